package jit.check_test

import data.jit.check
import data.jit.fixtures

decide(overrides) := d if {
	d := check.decision with input as fixtures.patch(fixtures.check, overrides)
		with data.catalog as fixtures.catalog
}

grant(id, actions, expires_at) := {"id": id, "actions": actions, "expires_at": expires_at}

# --- allow ---

test_allow_via_grant if {
	decide({}) == {"allow": true, "reasons": [], "grant_id": "g1", "expires_at": fixtures.now + 600, "standing": false}
}

test_grant_expiring_last_wins_ties_by_smallest_id if {
	grants := [
		grant("b", ["write"], fixtures.now + 50),
		grant("c", ["write"], fixtures.now + 10),
		grant("a", ["write"], fixtures.now + 50),
		grant("z", ["read"], fixtures.now + 999),
	]
	d := decide({"grants": grants})
	d.grant_id == "a"
	d.expires_at == fixtures.now + 50
}

test_expired_and_malformed_grants_ignored if {
	grants := [
		grant("expired", ["write"], fixtures.now),
		grant(7, ["write"], fixtures.now + 99),
		{"id": "no-expiry", "actions": ["write"]},
		{"id": "bad-actions", "actions": "write", "expires_at": fixtures.now + 99},
		"garbage",
	]
	d := decide({"grants": grants})
	d.allow == false
	fixtures.codes(d) == ["no_grant"]
}

test_allow_via_standing if {
	d := decide({"action": "read", "subject": {"id": "dan", "groups": ["dba"]}})
	d == {"allow": true, "reasons": [], "grant_id": "", "expires_at": 0, "standing": true}
	decide({"resource": "k8s/prod/admin", "action": "view", "subject": {"id": "s", "groups": ["sre"]}, "grants": []}).standing == true
}

test_standing_requires_group_and_action if {
	decide({"action": "write", "subject": {"id": "dan", "groups": ["dba"]}}).standing == false
	decide({"action": "read", "subject": {"id": "dan"}, "grants": []}).allow == false
	decide({"resource": "s3/exports", "action": "read", "subject": {"id": "dan", "groups": ["dba"]}, "grants": []}).allow == false
}

test_no_source_cidrs_means_any_source if {
	decide({"resource": "s3/exports", "context": {}}).allow == true
	decide({"resource": "s3/exports", "context": {"source_ip": "8.8.8.8"}}).allow == true
	decide({"resource": "k8s/prod/admin", "action": "exec", "grants": [grant("g", ["exec"], fixtures.now + 1)]}).allow == true
}

test_optional_context_and_grants if {
	d := check.decision with input as object.remove(fixtures.check, ["context", "grants"])
		with data.catalog as fixtures.catalog
	fixtures.codes(d) == ["source_not_allowed"]
	e := check.decision with input as object.remove(fixtures.patch(fixtures.check, {"resource": "s3/exports"}), ["context", "grants"])
		with data.catalog as fixtures.catalog
	fixtures.codes(e) == ["no_grant"]
}

# --- deny ---

test_deny_no_grant if {
	decide({"grants": []}) == {
		"allow": false,
		"reasons": [{
			"code": "no_grant",
			"message": "the subject has no standing access and no live grant for this action",
		}],
		"grant_id": "",
		"expires_at": 0,
		"standing": false,
	}
}

test_deny_unknown_resource if {
	d := decide({"resource": "db/nope"})
	fixtures.codes(d) == ["unknown_resource"]
	d.reasons[0].resource == "db/nope"
	d2 := check.decision with input as fixtures.check with data.catalog as {}
	fixtures.codes(d2) == ["unknown_resource"]
}

test_deny_action_not_allowed if {
	d := decide({"action": "drop", "grants": [grant("g1", ["drop"], fixtures.now + 60)]})
	fixtures.codes(d) == ["action_not_allowed"]
	d.reasons[0].action == "drop"
	d.allow == false
}

test_deny_source_not_allowed if {
	every ctx in [{"source_ip": "8.8.8.8"}, {"source_ip": ""}, {"source_ip": "not-an-ip"}, {"source_ip": 10}, {}] {
		d := decide({"context": ctx})
		fixtures.codes(d) == ["source_not_allowed"]
		d.allow == false
	}
	decide({"context": {"source_ip": "8.8.8.8"}}).reasons[0].source_ip == "8.8.8.8"
	decide({"context": {"source_ip": 10}}).reasons[0].source_ip == ""
	decide({"context": {"source_ip": "127.0.0.1"}}).allow == true
}

test_deny_source_also_applies_to_standing if {
	d := decide({"action": "read", "subject": {"id": "dan", "groups": ["dba"]}, "context": {"source_ip": "8.8.8.8"}})
	fixtures.codes(d) == ["source_not_allowed"]
}

# A catalogue with errors never serves: jitgate refuses a bundle whose data.jit.catalog.errors is not
# empty (see catalog_test.rego), so the hot path does not re-validate entries. When a check against such
# an entry is denied, the reasons still name the misconfiguration.
test_misconfigured_resource_named_in_denials if {
	d := decide({"resource": "broken/typo", "action": "write", "grants": [grant("g", ["write"], fixtures.now + 9)]})
	fixtures.codes(d) == ["action_not_allowed", "resource_misconfigured"]
	d.reasons[1].fields == ["source_cidr"]
	e := decide({"resource": "broken/entry", "action": "read", "grants": [grant("g", ["read"], fixtures.now + 9)]})
	fixtures.codes(e) == ["action_not_allowed", "resource_misconfigured"]
	e.reasons[1].fields == ["entry"]
}

test_deny_null_source_cidrs_fails_closed if {
	cat := object.union(fixtures.catalog, {"resources": {"s3/exports": {"source_cidrs": null}}})
	d := check.decision with input as fixtures.patch(fixtures.check, {"resource": "s3/exports"})
		with data.catalog as cat
	fixtures.codes(d) == ["source_not_allowed"]
}

# --- malformed input ---

test_invalid_input_not_an_object if {
	every i in [null, "x", 1, [], true] {
		d := check.decision with input as i with data.catalog as fixtures.catalog
		d.allow == false
		fixtures.invalid_fields(d) == ["input"]
	}
}

test_invalid_input_fields if {
	fixtures.invalid_fields(decide({"subject": "alice"})) == ["subject"]
	fixtures.invalid_fields(decide({"subject": {"id": 1, "groups": [1]}})) == ["subject.groups", "subject.id"]
	fixtures.invalid_fields(decide({"resource": ""})) == ["resource"]
	fixtures.invalid_fields(decide({"action": ["write"]})) == ["action"]
	fixtures.invalid_fields(decide({"now": "now"})) == ["now"]
	fixtures.invalid_fields(decide({"grants": {"g1": {}}})) == ["grants"]
	fixtures.invalid_fields(decide({"context": "10.1.2.3"})) == ["context"]
	d := check.decision with input as {} with data.catalog as fixtures.catalog
	fixtures.invalid_fields(d) == ["action", "now", "resource", "subject"]
}

# never is undefined for every argument: standing in for a helper that breaks down.
never(_) if false

test_default_decision_when_evaluation_breaks_down if {
	d := check.decision with input as {} with data.catalog as fixtures.catalog with check.denied as never
	d.allow == false
	fixtures.codes(d) == ["internal_error"]
}
