# Shared helpers: reason objects, type checks, optional-field access.
# Everything here is total over garbage input and uses only Wasm-safe builtins.
package jit.util

# messages: the constant human sentence for every reason code. Specifics go in extra fields,
# never in the message, so that the TypeScript side can format and translate them.
messages := {
	"action_not_allowed": "the resource does not allow this action",
	"already_granted": "the requester already holds a live grant for every requested action",
	"already_reviewed": "this reviewer has already reviewed the request",
	"approval_required": "the request needs approval from the listed groups",
	"approvals_outstanding": "the request still needs approvals from the listed groups",
	"auto_approved": "the request matches the resource's auto-approval policy",
	"break_glass": "emergency break-glass access is granted and the listed groups are notified",
	"break_glass_not_allowed": "the requester may not use break-glass access for this request",
	"duplicate_pending": "a pending request already covers these actions on this resource",
	"duration_capped": "the requested duration exceeds the maximum and was reduced to it",
	"group_already_satisfied": "every approval group of this reviewer already has enough approvals",
	"internal_error": "the policy could not evaluate this input",
	"invalid_duration": "the requested duration must be a positive whole number of seconds",
	"invalid_input": "a required input field is missing or has the wrong type",
	"justification_too_short": "the justification is shorter than the required minimum",
	"no_actions": "at least one action must be requested",
	"no_grant": "the subject has no standing access and no live grant for this action",
	"not_an_approver": "the reviewer is not in any approval group of the request",
	"request_already_decided": "the request has already been approved or denied",
	"resource_misconfigured": "the catalogue entry for this resource is invalid",
	"self_review": "requesters may not review their own request",
	"source_not_allowed": "the request does not come from an allowed network",
	"ticket_invalid": "the ticket reference does not have the required format",
	"ticket_required": "a ticket reference is required for this resource",
	"unknown_resource": "the resource is not in the catalogue",
}

# reason builds a reason object: the extra fields plus "code" and "message".
reason(code, extra) := object.union(extra, {"code": code, "message": object.get(messages, code, messages.internal_error)})

# invalid is the reason for a missing or malformed input field.
invalid(field) := reason("invalid_input", {"field": field})

# sorted_reasons turns a set of reasons into an array ordered by code, then by the other fields.
sorted_reasons(reasons) := [pair[1] | some pair in sort({[r.code, r] | some r in reasons})]

# field: a top-level input field, null when missing or when the input is not an object. Use it
# under `not`: an undefined reference inside a negated expression makes the whole rule undefined.
field(name) := opt(input, name, null)

# opt is obj[key] when obj is an object holding key with a non-null value, else d.
opt(obj, key, d) := v if {
	v := obj[key]
	not is_null(v)
} else := d

str_array(x) if {
	is_array(x)
	every v in x {
		is_string(v)
	}
}

pos_int(x) if {
	is_number(x)
	x > 0
	floor(x) == x
}

nonneg_int(x) if {
	is_number(x)
	x >= 0
	floor(x) == x
}

nonempty_string(x) if {
	is_string(x)
	trim_space(x) != ""
}

# approvals_ok: a non-empty array of {"group": string, "count": positive integer}, one entry per group.
approvals_ok(list) if {
	is_array(list)
	count(list) > 0
	every a in list {
		nonempty_string(a.group)
		pos_int(a.count)
	}
	count({a.group | some a in list}) == count(list)
}

# principal_problems: invalid_input reasons for a {"id": string, "groups": [string]} object
# (groups optional). Pass opt(input, name, null) so that a missing principal is reported.
principal_problems(p, name) := {invalid(name)} if {
	not is_object(p)
} else := {invalid(concat(".", [name, f])) | some f in ["id", "groups"]; not principal_field_ok(p, f)}

principal_field_ok(p, "id") if nonempty_string(p.id)

principal_field_ok(p, "groups") if str_array(opt(p, "groups", []))

# groups of a principal ([] when absent); callers only trust it once principal_problems is empty.
groups(p) := opt(p, "groups", [])

# member_of_any: some group of the principal is in allowed.
member_of_any(principal_groups, allowed) if {
	some g in principal_groups
	g in allowed
}
