# Entrypoint jit/request/plan: evaluates a new access request (deny, auto_approve or needs_approval).
package jit.request

import data.jit.catalog
import data.jit.util

# Fallback when evaluation breaks down; never expected, but keeps the result total.
default plan := {
	"decision": "deny",
	"reasons": [{"code": "internal_error", "message": "the policy could not evaluate this input"}],
	"approvals": [],
	"distinct_approvers": true,
	"max_duration_s": 0,
	"granted_duration_s": 0,
	"pending_ttl_s": 0,
	"break_glass": false,
	"notify": [],
	"audience": "",
}

plan := object.union(denied, {"reasons": util.sorted_reasons(problems)}) if {
	count(problems) > 0
} else := accepted("auto_approve", bg_cap, true, [], 0, bg_notify, {util.reason("break_glass", {"notify": bg_notify})}) if {
	well_formed
	bg_eligible
} else := accepted("auto_approve", auto_cap, false, [], 0, [], {util.reason("auto_approved", {})}) if {
	well_formed
	auto_eligible
} else := accepted("needs_approval", res_cap, false, approvals, settings.pending_ttl_s, [], {util.reason("approval_required", {})}) if {
	well_formed
}

denied := {
	"decision": "deny",
	"approvals": [],
	"distinct_approvers": true,
	"max_duration_s": 0,
	"granted_duration_s": 0,
	"pending_ttl_s": 0,
	"break_glass": false,
	"notify": [],
	"audience": "",
}

accepted(decision, cap, break_glass, approvals_out, ttl, notify, info) := {
	"decision": decision,
	"reasons": util.sorted_reasons(info | capped(cap)),
	"approvals": approvals_out,
	"distinct_approvers": util.opt(res, "distinct_approvers", true),
	"max_duration_s": cap,
	"granted_duration_s": min([duration, cap]),
	"pending_ttl_s": ttl,
	"break_glass": break_glass,
	"notify": notify,
	"audience": util.opt(res, "audience", input.resource),
}

capped(cap) := {util.reason("duration_capped", {"max_duration_s": cap, "requested_duration_s": duration})} if {
	duration > cap
} else := set()

# Positive gate for every non-deny outcome (defence in depth on top of "no problems").
well_formed if {
	_ := res
	_ := duration
	is_number(input.now)
	count(action_set) > 0
	every a in action_set {
		a in res.actions
	}
	count(util.principal_problems(input.requester, "requester")) == 0
}

# --- problems: one deny reason per problem ---

problems := field_problems if is_object(input)

else := {util.invalid("input")}

field_problems contains p if some p in util.principal_problems(util.opt(input, "requester", null), "requester")

field_problems contains util.invalid("resource") if not util.nonempty_string(util.field("resource"))

field_problems contains util.reason("unknown_resource", {"resource": name}) if {
	name := input.resource
	util.nonempty_string(name)
	not catalog.resource(name)
}

field_problems contains util.reason("resource_misconfigured", {"resource": name, "fields": sort(errs)}) if {
	name := input.resource
	errs := catalog.config_errors(catalog.resource(name))
	count(errs) > 0
}

field_problems contains util.invalid("actions") if not util.str_array(util.field("actions"))

field_problems contains util.reason("no_actions", {}) if input.actions == []

field_problems contains util.reason("action_not_allowed", {"action": a}) if {
	r := res
	some a in action_set
	not a in r.actions
}

field_problems contains util.reason("invalid_duration", {}) if not util.pos_int(util.field("duration_s"))

field_problems contains util.invalid("justification") if not is_string(util.field("justification"))

field_problems contains util.reason("justification_too_short", {"min_length": m, "length": n}) if {
	m := settings.min_justification
	n := count(trim_space(input.justification))
	n < m
}

field_problems contains util.invalid("ticket") if not is_string(util.opt(input, "ticket", ""))

field_problems contains util.reason("ticket_required", {}) if {
	settings.requires_ticket == true
	trim_space(ticket) == ""
	not bg_eligible
}

field_problems contains util.reason("ticket_invalid", {}) if {
	pattern := settings.ticket_pattern
	pattern != ""
	t := trim_space(ticket)
	t != ""
	not regex.match(pattern, t)
	not bg_eligible
}

field_problems contains util.invalid("emergency") if not is_boolean(util.opt(input, "emergency", false))

field_problems contains util.reason("break_glass_not_allowed", {"detail": bg_refusal}) if {
	input.emergency == true
	_ := res
	_ := action_set
	not bg_eligible
}

field_problems contains util.invalid("now") if not is_number(util.field("now"))

field_problems contains util.invalid("live_grants") if not is_array(util.opt(input, "live_grants", []))

field_problems contains util.invalid("pending_requests") if not is_array(util.opt(input, "pending_requests", []))

field_problems contains util.reason("already_granted", {"grant_ids": ids}) if {
	count(action_set) > 0
	count(action_set - granted_actions) == 0
	ids := sort({util.opt(g, "id", "") | some g in live_grants; some a in g.actions; a in action_set})
}

field_problems contains util.reason("duplicate_pending", {"request_ids": duplicate_ids}) if {
	count(action_set) > 0
	count(duplicate_ids) > 0
	not bg_eligible
}

# --- derived values (each undefined unless its inputs are valid) ---

res := r if {
	r := catalog.resource(input.resource)
	count(catalog.config_errors(r)) == 0
}

settings := catalog.settings(res)

res_cap := settings.max_duration_s

action_set := {a | some a in input.actions} if util.str_array(input.actions)

duration := input.duration_s if util.pos_int(input.duration_s)

ticket := util.opt(input, "ticket", "")

requester_groups := util.groups(input.requester)

approvals := catalog.approvals_for(res, action_set)

# Live grants of the requester on this resource that have not expired.
live_grants := [g |
	some g in util.opt(input, "live_grants", [])
	g.resource == input.resource
	is_number(g.expires_at)
	g.expires_at > input.now
	util.str_array(g.actions)
]

granted_actions := {a | some g in live_grants; some a in g.actions}

# Pending requests on this resource whose actions include every requested action.
duplicate_ids := sort({util.opt(p, "id", "") |
	some p in util.opt(input, "pending_requests", [])
	p.resource == input.resource
	util.str_array(p.actions)
	every a in action_set {
		a in p.actions
	}
})

# --- break glass ---

bg := b if {
	b := res.break_glass
	is_object(b)
}

bg_member if util.member_of_any(requester_groups, bg.groups)

bg_actions_ok if {
	allowed := util.opt(bg, "actions", res.actions)
	every a in action_set {
		a in allowed
	}
}

bg_eligible if {
	input.emergency == true
	bg_member
	bg_actions_ok
}

bg_refusal := "not_configured" if not bg

else := "not_in_group" if not bg_member

else := "action_not_covered"

bg_cap := util.opt(bg, "max_duration_s", res_cap)

bg_notify := sort({g | some g in util.opt(bg, "notify", [])})

# --- auto approval ---

auto := a if {
	a := res.auto_approve
	is_object(a)
}

auto_eligible if {
	every a in action_set {
		a in auto.actions
	}
	util.member_of_any(requester_groups, auto.groups)
}

auto_cap := min([res_cap, util.opt(auto, "max_duration_s", res_cap)])
