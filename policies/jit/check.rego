# Entrypoint jit/check/decision: may this subject perform this action on this resource now?
# Hot path: direct catalogue lookups only, no iteration over the catalogue.
package jit.check

import data.jit.catalog
import data.jit.util

default decision := {
	"allow": false,
	"reasons": [{"code": "internal_error", "message": "the policy could not evaluate this input"}],
	"grant_id": "",
	"expires_at": 0,
	"standing": false,
}

# Allow first: the common answer is decided by a few direct lookups; the denial reasons, which look at
# every field, are only worked out when no allow rule holds.
decision := {"allow": true, "reasons": [], "grant_id": "", "expires_at": 0, "standing": true} if {
	permitted
	standing
} else := {"allow": true, "reasons": [], "grant_id": grant_id, "expires_at": latest, "standing": false} if {
	permitted
	count(matching) > 0
} else := denied(problems) if {
	count(problems) > 0
} else := denied({util.reason("no_grant", {})})

denied(reasons) := {"allow": false, "reasons": util.sorted_reasons(reasons), "grant_id": "", "expires_at": 0, "standing": false}

# Everything an allow needs besides the grant or standing access: a well-formed request for an action
# the (well-formed) resource offers, from an allowed network. Defence in depth on top of "no problems".
permitted if {
	util.nonempty_string(input.subject.id)
	util.str_array(util.groups(input.subject))
	is_number(input.now)
	is_object(util.opt(input, "context", {}))
	r := res
	input.action in r.actions
	source_allowed(r)
}

# --- problems ---

problems := field_problems if is_object(input)

else := {util.invalid("input")}

field_problems contains p if some p in util.principal_problems(util.opt(input, "subject", null), "subject")

field_problems contains util.invalid("resource") if not util.nonempty_string(util.field("resource"))

field_problems contains util.invalid("action") if not util.nonempty_string(util.field("action"))

field_problems contains util.invalid("now") if not is_number(util.field("now"))

field_problems contains util.invalid("grants") if not is_array(util.opt(input, "grants", []))

field_problems contains util.invalid("context") if not is_object(util.opt(input, "context", {}))

field_problems contains util.reason("unknown_resource", {"resource": name}) if {
	name := input.resource
	util.nonempty_string(name)
	not data.catalog.resources[name]
}

field_problems contains util.reason("resource_misconfigured", {"resource": input.resource, "fields": fields}) if {
	fields := misconfigured_fields
	count(fields) > 0
}

field_problems contains util.reason("action_not_allowed", {"action": action}) if {
	r := res
	action := input.action
	is_string(action)
	not action in util.opt(r, "actions", [])
}

field_problems contains util.reason("source_not_allowed", {"source_ip": source_ip}) if {
	r := res
	has_source_cidrs(r)
	not source_allowed(r)
}

# --- derived values ---

res := data.catalog.resources[input.resource]

misconfigured_fields := sort(catalog.unknown_fields(res)) if is_object(res)

else := ["entry"] if _ := res

source_ip := ip if {
	ip := input.context.source_ip
	is_string(ip)
} else := ""

source_allowed(r) if not has_source_cidrs(r)

# Defined whenever the entry has the key, even with a null value (which then allows no source).
has_source_cidrs(r) if _ = r.source_cidrs

source_allowed(r) if {
	source_ip != ""
	some cidr in r.source_cidrs
	net.cidr_contains(cidr, source_ip)
}

standing if {
	s := res.standing
	input.action in s.actions
	util.member_of_any(util.groups(input.subject), s.groups)
}

# Grants that cover the action and have not expired; the one expiring last wins, ties by smallest id.
# The membership test comes first: it is what rules out most grants.
matching := [[0 - g.expires_at, g.id] |
	some g in input.grants
	input.action in g.actions
	is_number(g.expires_at)
	g.expires_at > input.now
	is_string(g.id)
	is_array(g.actions)
]

best := sort(matching)[0]

latest := 0 - best[0]

grant_id := best[1]
