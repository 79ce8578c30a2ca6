package jit.catalog_test

import data.jit.catalog
import data.jit.fixtures

# The shipped catalogue (policies/catalog/data.json) must be valid. If this fails, run
#   opa eval -d policies 'data.jit.catalog.errors'
# to see which entries and fields are wrong.
test_shipped_catalog_is_valid if {
	count(catalog.errors) == 0
}

test_shipped_catalog_is_not_empty if {
	count(data.catalog.resources) > 0
	count(data.catalog.tiers) > 0
}

test_fixture_errors if {
	errs := catalog.errors with data.catalog as fixtures.catalog
	errs == {
		{"resource": "broken/entry", "fields": ["entry"]},
		{"resource": "broken/tier", "fields": [
			"max_duration_s", "min_justification", "pending_ttl_s",
			"requires_ticket", "ticket_pattern", "tier",
		]},
		{"resource": "broken/typo", "fields": ["source_cidr"]},
	}
}

test_errors_in_tiers_and_structure if {
	bad_tiers := {"t": {"max_duration_s": 0, "pending_ttl_s": "1", "min_justification": -1, "ticket_pattern": "("}}
	errs := catalog.errors with data.catalog as {"tiers": bad_tiers, "resources": []}
	errs == {
		{"tier": "t", "fields": ["max_duration_s", "min_justification", "pending_ttl_s", "requires_ticket", "ticket_pattern"]},
		{"catalog": "resources", "fields": ["resources"]},
	}
	missing := catalog.errors with data.catalog as {}
	missing == {{"catalog": "resources", "fields": ["resources"]}, {"catalog": "tiers", "fields": ["tiers"]}}
}

good := {
	"tier": "low",
	"actions": ["read", "write"],
	"approvers": [{"group": "g", "count": 1}],
}

errors_of(entry) := errs if {
	errs := catalog.config_errors(entry) with data.catalog as fixtures.catalog
}

test_minimal_entry_is_valid if {
	errors_of(good) == set()
	full := object.union(good, {
		"description": "d", "audience": "a", "distinct_approvers": false,
		"max_duration_s": 60, "pending_ttl_s": 60, "min_justification": 0, "requires_ticket": true,
		"ticket_pattern": "^T-[0-9]+$",
		"action_approvers": {"write": [{"group": "h", "count": 2}]},
		"auto_approve": null,
		"break_glass": {"groups": ["g"], "actions": ["read"], "max_duration_s": 30, "notify": ["sec"]},
		"standing": {"groups": ["g"], "actions": ["read"]},
		"source_cidrs": ["10.0.0.0/8"],
	})
	errors_of(full) == set()
}

test_each_field_is_validated if {
	cases := {
		"tier": {"tier": "gold"},
		"actions": {"actions": []},
		"approvers": {"approvers": [{"group": "g", "count": 1.5}]},
		"action_approvers": {"action_approvers": {"drop": [{"group": "g", "count": 1}]}},
		"audience": {"audience": ""},
		"distinct_approvers": {"distinct_approvers": "yes"},
		"max_duration_s": {"max_duration_s": -1},
		"pending_ttl_s": {"pending_ttl_s": 0},
		"min_justification": {"min_justification": 1.5},
		"requires_ticket": {"requires_ticket": 1},
		"ticket_pattern": {"ticket_pattern": "(["},
		"auto_approve": {"auto_approve": {"actions": ["drop"], "groups": ["g"]}},
		"break_glass": {"break_glass": {"groups": ["g"], "notify": "sec"}},
		"standing": {"standing": {"groups": ["g"], "actions": ["read"], "extra": 1}},
		"source_cidrs": {"source_cidrs": null},
	}
	every field, patch in cases {
		field in errors_of(object.union(good, patch))
	}
}

test_unknown_fields_are_errors if {
	errors_of(object.union(good, {"aproovers": []})) == {"aproovers"}
	catalog.unknown_fields(object.union(good, {"x": 1})) == {"x"}
	errors_of(["not", "an", "object"]) == {"entry"}
}

test_settings_resolve_tier_defaults_and_overrides if {
	s := catalog.settings(object.union(good, {"max_duration_s": 60})) with data.catalog as fixtures.catalog
	s == {"max_duration_s": 60, "pending_ttl_s": 86400, "min_justification": 10, "requires_ticket": false, "ticket_pattern": ""}
}

test_approvals_for_merges_in_plan_order if {
	r := {"approvers": [{"group": "a", "count": 1}, {"group": "b", "count": 2}], "action_approvers": {
		"x": [{"group": "c", "count": 1}, {"group": "a", "count": 2}],
		"y": [{"group": "b", "count": 1}, {"group": "d", "count": 1}],
	}}
	catalog.approvals_for(r, {"y", "x", "z"}) == [
		{"group": "a", "count": 2}, {"group": "b", "count": 2},
		{"group": "c", "count": 1}, {"group": "d", "count": 1},
	]
	catalog.approvals_for(r, {"z"}) == r.approvers
	catalog.approvals_for(object.remove(r, ["action_approvers"]), {"x"}) == r.approvers
}

test_resource_lookup if {
	catalog.resource("db/orders").tier == "high" with data.catalog as fixtures.catalog
	not catalog.resource("db/none") with data.catalog as fixtures.catalog
	not catalog.resource(7) with data.catalog as fixtures.catalog
}
