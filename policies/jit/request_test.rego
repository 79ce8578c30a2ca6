package jit.request_test

import data.jit.fixtures
import data.jit.request

plan(overrides) := p if {
	p := request.plan with input as fixtures.patch(fixtures.request, overrides)
		with data.catalog as fixtures.catalog
}

# --- outcomes ---

test_needs_approval_full_shape if {
	plan({}) == {
		"decision": "needs_approval",
		"reasons": [{"code": "approval_required", "message": "the request needs approval from the listed groups"}],
		"approvals": [{"group": "dba", "count": 1}, {"group": "security", "count": 1}],
		"distinct_approvers": true,
		"max_duration_s": 3600,
		"granted_duration_s": 1800,
		"pending_ttl_s": 14400,
		"break_glass": false,
		"notify": [],
		"audience": "orders",
	}
}

test_needs_approval_caps_duration if {
	p := plan({"duration_s": 7200})
	p.decision == "needs_approval"
	p.granted_duration_s == 3600
	fixtures.codes(p) == ["approval_required", "duration_capped"]
	some r in p.reasons
	r.code == "duration_capped"
	r.max_duration_s == 3600
	r.requested_duration_s == 7200
}

test_needs_approval_per_action_approvers if {
	plan({"actions": ["admin", "read"]}).approvals == [
		{"group": "dba", "count": 1}, {"group": "security", "count": 1},
		{"group": "dba-leads", "count": 1},
	]
	p := plan({"resource": "k8s/prod/admin", "actions": ["admin"], "ticket": ""})
	fixtures.codes(p) == ["ticket_required"]
	q := plan({"resource": "k8s/prod/admin", "actions": ["admin"]})
	q.approvals == [{"group": "sre", "count": 3}, {"group": "security", "count": 1}]
	q.audience == "k8s/prod/admin"
	q.pending_ttl_s == 3600
}

test_needs_approval_not_distinct if {
	p := plan({"resource": "s3/exports", "actions": ["write"], "ticket": ""})
	p.decision == "needs_approval"
	p.distinct_approvers == false
	p.max_duration_s == 7200
}

test_auto_approve_capped if {
	p := plan({"actions": ["read"], "requester": {"id": "alice", "groups": ["engineering"]}, "duration_s": 3600})
	p == {
		"decision": "auto_approve",
		"reasons": [
			{"code": "auto_approved", "message": "the request matches the resource's auto-approval policy"},
			{
				"code": "duration_capped",
				"message": "the requested duration exceeds the maximum and was reduced to it",
				"max_duration_s": 1800,
				"requested_duration_s": 3600,
			},
		],
		"approvals": [],
		"distinct_approvers": true,
		"max_duration_s": 1800,
		"granted_duration_s": 1800,
		"pending_ttl_s": 0,
		"break_glass": false,
		"notify": [],
		"audience": "orders",
	}
}

test_auto_approve_defaults_to_resource_cap if {
	p := plan({"resource": "s3/exports", "actions": ["read"], "requester": {"id": "a", "groups": ["analytics"]}, "duration_s": 9000})
	p.decision == "auto_approve"
	p.max_duration_s == 7200
	p.granted_duration_s == 7200
}

test_auto_approve_needs_group_and_all_actions if {
	plan({"actions": ["read"]}).decision == "needs_approval"
	plan({"actions": ["read", "write"], "requester": {"id": "a", "groups": ["oncall"]}}).decision == "needs_approval"
	plan({"actions": ["read"], "requester": {"id": "a"}}).decision == "needs_approval"
}

test_break_glass if {
	p := plan({
		"emergency": true, "ticket": "", "duration_s": 9000,
		"requester": {"id": "alice", "groups": ["oncall"]},
		"pending_requests": [{"id": "r1", "resource": "db/orders", "actions": ["write"]}],
	})
	p.decision == "auto_approve"
	p.break_glass == true
	p.max_duration_s == 7200
	p.granted_duration_s == 7200
	p.notify == ["dba", "security"]
	p.approvals == []
	p.pending_ttl_s == 0
	fixtures.codes(p) == ["break_glass", "duration_capped"]
	some r in p.reasons
	r.code == "break_glass"
	r.notify == ["dba", "security"]
}

test_break_glass_defaults if {
	p := plan({"resource": "k8s/prod/admin", "actions": ["exec"], "emergency": true, "requester": {"id": "a", "groups": ["sre-oncall"]}})
	p.break_glass == true
	p.max_duration_s == 1800
	p.notify == []
}

test_break_glass_waives_bad_ticket if {
	plan({"emergency": true, "ticket": "nope", "requester": {"id": "a", "groups": ["oncall"]}}).break_glass == true
}

test_break_glass_refusals if {
	refusal({"resource": "s3/exports", "actions": ["read"], "ticket": ""}) == "not_configured"
	refusal({}) == "not_in_group"
	refusal({"resource": "k8s/prod/admin", "actions": ["admin"], "requester": {"id": "a", "groups": ["sre-oncall"]}}) == "action_not_covered"
}

refusal(overrides) := r.detail if {
	p := plan(object.union({"emergency": true}, overrides))
	p.decision == "deny"
	some r in p.reasons
	r.code == "break_glass_not_allowed"
}

test_emergency_refused_still_needs_ticket if {
	fixtures.codes(plan({"emergency": true, "ticket": ""})) == ["break_glass_not_allowed", "ticket_required"]
}

# --- deny reasons ---

test_deny_full_shape if {
	plan({"resource": "nope"}) == {
		"decision": "deny",
		"reasons": [{"code": "unknown_resource", "message": "the resource is not in the catalogue", "resource": "nope"}],
		"approvals": [],
		"distinct_approvers": true,
		"max_duration_s": 0,
		"granted_duration_s": 0,
		"pending_ttl_s": 0,
		"break_glass": false,
		"notify": [],
		"audience": "",
	}
}

test_deny_misconfigured_resource if {
	p := plan({"resource": "broken/typo"})
	fixtures.codes(p) == ["resource_misconfigured"]
	p.reasons[0].fields == ["source_cidr"]
	plan({"resource": "broken/tier"}).reasons[0].fields == [
		"max_duration_s", "min_justification", "pending_ttl_s",
		"requires_ticket", "ticket_pattern", "tier",
	]
	plan({"resource": "broken/entry"}).reasons[0].fields == ["entry"]
}

test_deny_actions if {
	fixtures.codes(plan({"actions": []})) == ["no_actions"]
	p := plan({"actions": ["drop", "write", "alter"]})
	[r.action | some r in p.reasons] == ["alter", "drop"]
	fixtures.codes(p) == ["action_not_allowed", "action_not_allowed"]
}

test_deny_duration if {
	every d in [0, -5, 1.5, "60", null] {
		fixtures.codes(plan({"duration_s": d})) == ["invalid_duration"]
	}
}

test_deny_justification if {
	p := plan({"justification": "   too short           "})
	fixtures.codes(p) == ["justification_too_short"]
	p.reasons[0].min_length == 20
	p.reasons[0].length == 9
	fixtures.invalid_fields(plan({"justification": 42})) == ["justification"]
}

test_deny_ticket if {
	fixtures.codes(plan({"ticket": "  "})) == ["ticket_required"]
	fixtures.codes(plan({"ticket": null})) == ["ticket_required"]
	fixtures.codes(plan({"ticket": "inc 123"})) == ["ticket_invalid"]
	fixtures.invalid_fields(plan({"ticket": 123})) == ["ticket"]
	plan({"resource": "s3/exports", "ticket": ""}).decision == "needs_approval"
}

test_deny_duplicate_pending if {
	pending := [
		{"id": "r2", "resource": "db/orders", "actions": ["write", "read"]},
		{"id": "r1", "resource": "db/orders", "actions": ["write"]},
		{"id": "r3", "resource": "s3/exports", "actions": ["write"]},
		{"id": "r4", "resource": "db/orders", "actions": ["read"]},
		"garbage",
	]
	p := plan({"pending_requests": pending})
	fixtures.codes(p) == ["duplicate_pending"]
	p.reasons[0].request_ids == ["r1", "r2"]
	plan({"actions": ["write", "admin"], "pending_requests": pending}).decision == "needs_approval"
}

test_deny_already_granted if {
	grants := [
		{"id": "g2", "resource": "db/orders", "actions": ["write"], "expires_at": fixtures.now + 60},
		{"id": "g1", "resource": "db/orders", "actions": ["read"], "expires_at": fixtures.now + 60},
		{"id": "g0", "resource": "db/orders", "actions": ["admin"], "expires_at": fixtures.now},
		{"id": "g9", "resource": "s3/exports", "actions": ["admin"], "expires_at": fixtures.now + 60},
	]
	p := plan({"actions": ["read", "write"], "live_grants": grants})
	fixtures.codes(p) == ["already_granted"]
	p.reasons[0].grant_ids == ["g1", "g2"]
	plan({"actions": ["write", "admin"], "live_grants": grants}).decision == "needs_approval"
}

test_deny_lists_every_problem if {
	p := plan({"actions": ["write", "drop"], "duration_s": 0, "justification": "short", "ticket": "", "emergency": true})
	fixtures.codes(p) == [
		"action_not_allowed", "break_glass_not_allowed", "invalid_duration",
		"justification_too_short", "ticket_required",
	]
}

# --- malformed input ---

test_invalid_input_not_an_object if {
	every i in [null, "x", 1, [], true] {
		p := request.plan with input as i with data.catalog as fixtures.catalog
		p.decision == "deny"
		fixtures.invalid_fields(p) == ["input"]
	}
}

test_invalid_input_empty_object if {
	p := request.plan with input as {} with data.catalog as fixtures.catalog
	fixtures.codes(p) == ["invalid_duration", "invalid_input", "invalid_input", "invalid_input", "invalid_input", "invalid_input"]
	fixtures.invalid_fields(p) == ["actions", "justification", "now", "requester", "resource"]
}

test_invalid_input_fields if {
	fixtures.invalid_fields(plan({"requester": {"groups": "oncall"}})) == ["requester.groups", "requester.id"]
	fixtures.invalid_fields(plan({"requester": "alice"})) == ["requester"]
	fixtures.invalid_fields(plan({"requester": {"id": " "}})) == ["requester.id"]
	fixtures.invalid_fields(plan({"resource": 7})) == ["resource"]
	fixtures.invalid_fields(plan({"actions": "write"})) == ["actions"]
	fixtures.invalid_fields(plan({"actions": [1]})) == ["actions"]
	fixtures.invalid_fields(plan({"emergency": "yes"})) == ["emergency"]
	fixtures.invalid_fields(plan({"now": "today"})) == ["now"]
	fixtures.invalid_fields(plan({"live_grants": {}})) == ["live_grants"]
	fixtures.invalid_fields(plan({"pending_requests": "r1"})) == ["pending_requests"]
}

test_optional_fields_may_be_missing if {
	minimal := object.remove(fixtures.request, ["emergency", "live_grants", "pending_requests"])
	p := request.plan with input as minimal with data.catalog as fixtures.catalog
	p.decision == "needs_approval"
}

test_default_plan_when_evaluation_breaks_down if {
	p := request.plan with input as {"resource": "db/orders"}
		with data.catalog as fixtures.catalog
		with request.field_problems as set()
	p.decision == "deny"
	fixtures.codes(p) == ["internal_error"]
}
