# Entrypoint jit/review/verdict: may this reviewer review this request, and what happens then?
# Works on the stored plan (request.approvals), not on the current catalogue.
package jit.review

import data.jit.util

default verdict := {
	"allowed": false,
	"reasons": [{"code": "internal_error", "message": "the policy could not evaluate this input"}],
	"counts_toward": [],
	"outcome": "pending",
}

verdict := {"allowed": false, "reasons": util.sorted_reasons(problems), "counts_toward": [], "outcome": "pending"} if {
	count(problems) > 0
} else := {"allowed": true, "reasons": [], "counts_toward": [], "outcome": "denied"} if {
	eligible
	input.decision == "deny"
} else := {"allowed": true, "reasons": util.sorted_reasons(progress), "counts_toward": counts_toward, "outcome": outcome} if {
	eligible
	input.decision == "approve"
	count(counts_toward) > 0
}

# Positive gate for allowing (defence in depth on top of "no problems").
eligible if {
	count(util.principal_problems(input.reviewer, "reviewer")) == 0
	input.reviewer.id != request.requester.id
	count(member_groups) > 0
	_ := reviews
	not already_reviewed
	not decided_state
}

# --- problems ---

problems := field_problems if is_object(input)

else := {util.invalid("input")}

field_problems contains p if some p in util.principal_problems(util.opt(input, "reviewer", null), "reviewer")

field_problems contains util.invalid("decision") if not util.field("decision") in {"approve", "deny"}

field_problems contains util.invalid("request") if not is_object(request)

field_problems contains util.invalid(concat(".", ["request", f])) if {
	is_object(request)
	some f in ["requester", "approvals", "distinct_approvers", "reviews"]
	not request_field_ok(f)
}

field_problems contains util.reason("self_review", {}) if {
	util.nonempty_string(input.reviewer.id)
	input.reviewer.id == request.requester.id
}

field_problems contains util.reason("already_reviewed", {}) if already_reviewed

field_problems contains util.reason("not_an_approver", {}) if count(member_groups) == 0

field_problems contains util.reason("request_already_decided", {"state": state}) if state := decided_state

field_problems contains util.reason("group_already_satisfied", {"groups": member_groups}) if {
	input.decision == "approve"
	count(member_groups) > 0
	count(open_groups) > 0
	count(counts_toward) == 0
}

request_field_ok("requester") if util.nonempty_string(request.requester.id)

request_field_ok("approvals") if util.approvals_ok(request.approvals)

request_field_ok("distinct_approvers") if is_boolean(util.opt(request, "distinct_approvers", true))

request_field_ok("reviews") if _ := reviews

review_ok(r) if {
	util.nonempty_string(r.reviewer)
	r.decision in {"approve", "deny"}
	util.str_array(util.opt(r, "counts_toward", []))
}

# --- derived values (each undefined unless its inputs are valid) ---

request := util.opt(input, "request", null)

approvals := a if {
	a := request.approvals
	util.approvals_ok(a)
}

reviews := rs if {
	rs := util.opt(request, "reviews", [])
	is_array(rs)
	every r in rs {
		review_ok(r)
	}
}

reviewer_groups := g if {
	g := util.groups(input.reviewer)
	util.str_array(g)
}

already_reviewed if {
	some r in reviews
	r.reviewer == input.reviewer.id
}

# Approvals each group has received from earlier approve reviews.
prior(group) := count([r |
	some r in reviews
	r.decision == "approve"
	group in util.opt(r, "counts_toward", [])
])

# Approval groups (plan order) that still need approvals.
open_groups := [a.group | some a in approvals; prior(a.group) < a.count]

# Approval groups (plan order) the reviewer belongs to.
member_groups := [a.group | some a in approvals; a.group in reviewer_groups] if {
	_ := approvals
	_ := reviewer_groups
}

# The groups this approval counts toward: with distinct approvers only the first open one.
counts_toward := array.slice(eligible_groups, 0, 1) if {
	util.opt(request, "distinct_approvers", true) == true
} else := eligible_groups

eligible_groups := [g | some g in open_groups; g in reviewer_groups]

decided_state := "denied" if {
	some r in reviews
	r.decision == "deny"
} else := "approved" if {
	_ := reviews
	_ := approvals
	count(open_groups) == 0
}

bonus(group) := 1 if group in counts_toward

else := 0

# What is still missing once this approval is counted.
remaining := [{"group": a.group, "count": n} |
	some a in approvals
	n := (a.count - prior(a.group)) - bonus(a.group)
	n > 0
]

outcome := "approved" if count(remaining) == 0

else := "pending"

progress := {util.reason("approvals_outstanding", {"remaining": remaining})} if count(remaining) > 0

else := set()
