# Test fixtures: a catalogue independent of policies/catalog/data.json (so that editing the real
# catalogue never breaks the unit tests) and baseline inputs. Excluded from the Wasm build.
package jit.fixtures

now := 1763900000

catalog := {
	"tiers": {
		"low": {"max_duration_s": 28800, "pending_ttl_s": 86400, "min_justification": 10, "requires_ticket": false},
		"high": {
			"max_duration_s": 3600, "pending_ttl_s": 14400, "min_justification": 20,
			"requires_ticket": true, "ticket_pattern": "^[A-Z]+-[0-9]+$",
		},
		"critical": {"max_duration_s": 1800, "pending_ttl_s": 3600, "min_justification": 20, "requires_ticket": true},
	},
	"resources": {
		"db/orders": {
			"description": "Orders database",
			"audience": "orders",
			"tier": "high",
			"actions": ["read", "write", "admin"],
			"approvers": [{"group": "dba", "count": 1}, {"group": "security", "count": 1}],
			"action_approvers": {"admin": [{"group": "dba-leads", "count": 1}]},
			"distinct_approvers": true,
			"auto_approve": {"actions": ["read"], "groups": ["oncall", "engineering"], "max_duration_s": 1800},
			"break_glass": {"groups": ["oncall"], "max_duration_s": 7200, "notify": ["security", "dba", "security"]},
			"standing": {"groups": ["dba"], "actions": ["read"]},
			"source_cidrs": ["10.0.0.0/8", "127.0.0.0/8"],
		},
		"k8s/prod/admin": {
			"tier": "critical",
			"actions": ["view", "exec", "admin"],
			"approvers": [{"group": "sre", "count": 2}],
			"action_approvers": {"admin": [{"group": "security", "count": 1}, {"group": "sre", "count": 3}]},
			"break_glass": {"groups": ["sre-oncall"], "actions": ["view", "exec"]},
			"standing": {"groups": ["sre"], "actions": ["view"]},
		},
		"s3/exports": {
			"tier": "low",
			"actions": ["read", "write"],
			"max_duration_s": 7200,
			"approvers": [{"group": "data-platform", "count": 1}, {"group": "analytics", "count": 1}],
			"distinct_approvers": false,
			"auto_approve": {"actions": ["read"], "groups": ["analytics"]},
		},
		"broken/tier": {"tier": "gold", "actions": ["read"], "approvers": [{"group": "x", "count": 1}]},
		"broken/typo": {
			"tier": "low", "actions": ["read"], "approvers": [{"group": "x", "count": 1}],
			"source_cidr": ["10.0.0.0/8"],
		},
		"broken/entry": "not an object",
	},
}

requester := {"id": "alice", "groups": ["eng"]}

# A request that needs approval on db/orders.
request := {
	"requester": requester,
	"resource": "db/orders",
	"actions": ["write"],
	"duration_s": 1800,
	"justification": "fix stuck orders in the queue",
	"ticket": "INC-123",
	"emergency": false,
	"now": now,
	"live_grants": [],
	"pending_requests": [],
}

# A review of a db/orders request that bob already approved for dba.
review := {
	"request": {
		"id": "r1",
		"requester": requester,
		"resource": "db/orders",
		"actions": ["write"],
		"approvals": [{"group": "dba", "count": 1}, {"group": "security", "count": 2}],
		"distinct_approvers": true,
		"reviews": [{"reviewer": "bob", "decision": "approve", "counts_toward": ["dba"]}],
	},
	"reviewer": {"id": "carol", "groups": ["dba", "security"]},
	"decision": "approve",
	"now": now,
}

# A check that a live grant allows.
check := {
	"subject": requester,
	"resource": "db/orders",
	"action": "write",
	"context": {"source_ip": "10.1.2.3"},
	"now": now,
	"grants": [{"id": "g1", "actions": ["read", "write"], "expires_at": now + 600}],
}

# patch(base, overrides): base with the top-level keys of overrides replaced (shallow, unlike object.union).
patch(base, overrides) := object.union(object.remove(base, object.keys(overrides)), overrides)

codes(result) := [r.code | some r in result.reasons]

invalid_fields(result) := [r.field | some r in result.reasons; r.code == "invalid_input"]
