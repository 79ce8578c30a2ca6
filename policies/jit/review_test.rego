package jit.review_test

import data.jit.fixtures
import data.jit.review

verdict(overrides) := v if {
	v := review.verdict with input as fixtures.patch(fixtures.review, overrides)
}

# verdict_on(request_overrides, overrides): also patches fields of input.request.
verdict_on(request_overrides, overrides) := verdict(object.union({"request": fixtures.patch(fixtures.review.request, request_overrides)}, overrides))

reviewer(id, groups) := {"id": id, "groups": groups}

# --- allowed ---

test_approve_distinct_counts_toward_first_open_group if {
	# carol is in dba and security; dba is already satisfied by bob, so she counts for security.
	verdict({}) == {
		"allowed": true,
		"reasons": [{
			"code": "approvals_outstanding",
			"message": "the request still needs approvals from the listed groups",
			"remaining": [{"group": "security", "count": 1}],
		}],
		"counts_toward": ["security"],
		"outcome": "pending",
	}
}

test_approve_distinct_plan_order if {
	v := verdict_on({"reviews": []}, {})
	v.counts_toward == ["dba"]
	v.reasons[0].remaining == [{"group": "security", "count": 2}]
}

test_approve_not_distinct_counts_toward_every_open_group if {
	v := verdict_on({"reviews": [], "distinct_approvers": false}, {})
	v.counts_toward == ["dba", "security"]
	v.outcome == "pending"
	v.reasons[0].remaining == [{"group": "security", "count": 1}]
}

test_approve_completes_request if {
	reviews := [
		{"reviewer": "bob", "decision": "approve", "counts_toward": ["dba"]},
		{"reviewer": "erin", "decision": "approve", "counts_toward": ["security"]},
	]
	verdict_on({"reviews": reviews}, {}) == {"allowed": true, "reasons": [], "counts_toward": ["security"], "outcome": "approved"}
}

test_missing_reviews_and_distinct_default if {
	v := verdict({"request": object.remove(fixtures.review.request, ["reviews", "distinct_approvers"])})
	v.allowed == true
	v.counts_toward == ["dba"]
}

test_deny_by_eligible_reviewer if {
	verdict({"decision": "deny", "reviewer": reviewer("dave", ["dba"])}) == {"allowed": true, "reasons": [], "counts_toward": [], "outcome": "denied"}
}

# --- not allowed ---

test_self_review if {
	v := verdict({"reviewer": reviewer("alice", ["dba", "security"])})
	v == {
		"allowed": false,
		"reasons": [{"code": "self_review", "message": "requesters may not review their own request"}],
		"counts_toward": [],
		"outcome": "pending",
	}
	fixtures.codes(verdict({"reviewer": reviewer("alice", ["security"]), "decision": "deny"})) == ["self_review"]
}

test_already_reviewed if {
	fixtures.codes(verdict({"reviewer": reviewer("bob", ["security"])})) == ["already_reviewed"]
	fixtures.codes(verdict({"reviewer": reviewer("bob", ["security"]), "decision": "deny"})) == ["already_reviewed"]
}

test_not_an_approver if {
	fixtures.codes(verdict({"reviewer": reviewer("dave", ["sre"])})) == ["not_an_approver"]
	fixtures.codes(verdict({"reviewer": {"id": "dave"}, "decision": "deny"})) == ["not_an_approver"]
}

test_group_already_satisfied if {
	v := verdict({"reviewer": reviewer("dave", ["dba"])})
	fixtures.codes(v) == ["group_already_satisfied"]
	v.reasons[0].groups == ["dba"]
	v.counts_toward == []
	v.outcome == "pending"
}

test_request_already_decided if {
	denied := [{"reviewer": "bob", "decision": "deny"}]
	v := verdict_on({"reviews": denied}, {})
	fixtures.codes(v) == ["request_already_decided"]
	v.reasons[0].state == "denied"
	approved := [
		{"reviewer": "bob", "decision": "approve", "counts_toward": ["dba", "security"]},
		{"reviewer": "erin", "decision": "approve", "counts_toward": ["security"]},
	]
	w := verdict_on({"reviews": approved, "distinct_approvers": false}, {"decision": "deny"})
	w.reasons[0].state == "approved"
}

test_several_problems_listed if {
	fixtures.codes(verdict({"reviewer": reviewer("alice", ["sre"]), "decision": "approve"})) == ["not_an_approver", "self_review"]
}

# --- malformed input ---

test_invalid_input_not_an_object if {
	every i in [null, "x", 1, [], false] {
		v := review.verdict with input as i
		v.allowed == false
		fixtures.invalid_fields(v) == ["input"]
	}
}

test_invalid_decision if {
	every d in ["approved", "", null, 1] {
		v := verdict({"decision": d})
		fixtures.invalid_fields(v) == ["decision"]
		v.allowed == false
	}
}

test_invalid_request if {
	fixtures.invalid_fields(verdict({"request": "r1"})) == ["request"]
	fixtures.invalid_fields(verdict({"request": null})) == ["request"]
	fixtures.invalid_fields(verdict_on({"requester": {"id": ""}}, {})) == ["request.requester"]
	fixtures.invalid_fields(verdict_on({"approvals": []}, {})) == ["request.approvals"]
	fixtures.invalid_fields(verdict_on({"approvals": [{"group": "dba", "count": 0}]}, {})) == ["request.approvals"]
	dup := [{"group": "dba", "count": 1}, {"group": "dba", "count": 2}]
	fixtures.invalid_fields(verdict_on({"approvals": dup}, {})) == ["request.approvals"]
	fixtures.invalid_fields(verdict_on({"distinct_approvers": "yes"}, {})) == ["request.distinct_approvers"]
	fixtures.invalid_fields(verdict_on({"reviews": {}}, {})) == ["request.reviews"]
	fixtures.invalid_fields(verdict_on({"reviews": [{"reviewer": "bob", "decision": "ok"}]}, {})) == ["request.reviews"]
	fixtures.invalid_fields(verdict_on({"reviews": [{"reviewer": "bob", "decision": "approve", "counts_toward": "dba"}]}, {})) == ["request.reviews"]
}

test_invalid_reviewer if {
	fixtures.invalid_fields(verdict({"reviewer": "carol"})) == ["reviewer"]
	fixtures.invalid_fields(verdict({"reviewer": {"groups": ["dba"]}})) == ["reviewer.id"]
	fixtures.invalid_fields(verdict({"reviewer": {"id": "carol", "groups": "dba"}})) == ["reviewer.groups"]
	v := review.verdict with input as object.remove(fixtures.review, ["reviewer"])
	fixtures.invalid_fields(v) == ["reviewer"]
}

test_default_verdict_when_evaluation_breaks_down if {
	v := review.verdict with input as {} with review.field_problems as set()
	v.allowed == false
	fixtures.codes(v) == ["internal_error"]
}
