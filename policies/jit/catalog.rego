# Catalogue lookups, tier defaults and validation of data.catalog (policies/catalog/data.json).
package jit.catalog

import data.jit.util

# Every field a resource entry may carry; anything else is a typo and makes the entry invalid.
resource_fields := {
	"action_approvers", "actions", "approvers", "audience", "auto_approve", "break_glass",
	"description", "distinct_approvers", "max_duration_s", "min_justification", "pending_ttl_s",
	"requires_ticket", "source_cidrs", "standing", "ticket_pattern", "tier",
}

# Settings a tier provides and a resource may override, with the default used when neither sets it
# (null: required).
setting_defaults := {
	"max_duration_s": null,
	"min_justification": null,
	"pending_ttl_s": null,
	"requires_ticket": null,
	"ticket_pattern": "",
}

# resource: the catalogue entry for name; undefined when unknown.
resource(name) := r if {
	is_string(name)
	r := data.catalog.resources[name]
}

tier(r) := t if {
	is_string(r.tier)
	t := data.catalog.tiers[r.tier]
	is_object(t)
}

# setting: the resource's own value, else its tier's, else d.
setting(r, key, d) := util.opt(r, key, util.opt(tier(r), key, d))

# settings: the resolved settings of a valid resource.
settings(r) := {k: setting(r, k, d) | some k, d in setting_defaults}

# unknown_fields: keys of an entry that are not resource fields.
unknown_fields(r) := object.keys(r) - resource_fields

# config_errors: the names of the fields of entry r that are invalid; empty when r is usable.
config_errors(r) := {f | some f in resource_fields; not valid(r, f)} | unknown_fields(r) if {
	is_object(r)
} else := {"entry"}

valid(_, "description") := true

valid(r, "tier") if tier(r)

valid(r, "actions") if {
	util.str_array(r.actions)
	count(r.actions) > 0
}

valid(r, "approvers") if util.approvals_ok(r.approvers)

valid(r, "action_approvers") if {
	aa := util.opt(r, "action_approvers", {})
	is_object(aa)
	every action, list in aa {
		action in r.actions
		util.approvals_ok(list)
	}
}

valid(r, "audience") if util.nonempty_string(util.opt(r, "audience", "default"))

valid(r, "distinct_approvers") if is_boolean(util.opt(r, "distinct_approvers", true))

valid(r, key) if {
	d := setting_defaults[key]
	setting_ok(key, setting(r, key, d))
}

valid(r, "auto_approve") if absent(r, "auto_approve")

valid(r, "auto_approve") if {
	a := r.auto_approve
	keys_within(a, {"actions", "groups", "max_duration_s"})
	actions_within(a.actions, r)
	util.str_array(a.groups)
	util.pos_int(util.opt(a, "max_duration_s", 1))
}

valid(r, "break_glass") if absent(r, "break_glass")

valid(r, "break_glass") if {
	b := r.break_glass
	keys_within(b, {"actions", "groups", "max_duration_s", "notify"})
	actions_within(util.opt(b, "actions", []), r)
	util.str_array(b.groups)
	util.pos_int(util.opt(b, "max_duration_s", 1))
	util.str_array(util.opt(b, "notify", []))
}

valid(r, "standing") if absent(r, "standing")

valid(r, "standing") if {
	s := r.standing
	keys_within(s, {"actions", "groups"})
	actions_within(s.actions, r)
	util.str_array(s.groups)
}

# source_cidrs: optional, but when present it must be a list of CIDR strings (null is not "absent").
valid(r, "source_cidrs") if not "source_cidrs" in object.keys(r)

valid(r, "source_cidrs") if util.str_array(r.source_cidrs)

setting_ok("max_duration_s", v) if util.pos_int(v)

setting_ok("pending_ttl_s", v) if util.pos_int(v)

setting_ok("min_justification", v) if util.nonneg_int(v)

setting_ok("requires_ticket", v) if is_boolean(v)

setting_ok("ticket_pattern", v) if {
	is_string(v)
	regex.is_valid(v)
}

absent(obj, key) if is_null(util.opt(obj, key, null))

keys_within(obj, allowed) if {
	is_object(obj)
	count(object.keys(obj) - allowed) == 0
}

actions_within(list, r) if {
	util.str_array(list)
	every a in list {
		a in r.actions
	}
}

# approvals_for: the approvals a request for the given action set needs, in plan order: the
# resource's approvers, then per-action extras (actions in sorted order); a group listed more than
# once appears once, at its first position, with its highest count.
approvals_for(r, actions) := [{"group": a.group, "count": max_count(all, a.group)} |
	some i, a in all
	not seen_before(all, i, a.group)
] if {
	extra := [a | some act in sort(actions); some a in util.opt(util.opt(r, "action_approvers", {}), act, [])]
	all := array.concat(r.approvers, extra)
}

seen_before(list, i, group) if {
	some j, b in list
	j < i
	b.group == group
}

max_count(list, group) := max([b.count | some b in list; b.group == group])

# errors: every problem in the catalogue (CI asserts it is empty; see catalog_test.rego).
errors contains {"resource": name, "fields": sort(errs)} if {
	some name, r in data.catalog.resources
	errs := config_errors(r)
	count(errs) > 0
}

errors contains {"tier": name, "fields": sort(errs)} if {
	some name, t in data.catalog.tiers
	errs := {k | some k, d in setting_defaults; not setting_ok(k, util.opt(t, k, d))}
	count(errs) > 0
}

errors contains {"catalog": "resources", "fields": ["resources"]} if not has_resources

errors contains {"catalog": "tiers", "fields": ["tiers"]} if not has_tiers

has_resources if is_object(data.catalog.resources)

has_tiers if is_object(data.catalog.tiers)
