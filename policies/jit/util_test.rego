package jit.util_test

import data.jit.util

test_reason_adds_code_and_constant_message if {
	util.reason("no_grant", {"x": 1}) == {
		"code": "no_grant", "x": 1,
		"message": "the subject has no standing access and no live grant for this action",
	}
	util.reason("no_such_code", {}).message == util.messages.internal_error
	util.reason("no_grant", {"code": "spoofed", "message": "spoofed"}).code == "no_grant"
}

test_every_message_is_a_nonempty_sentence if {
	every code, message in util.messages {
		regex.match(`^[a-z][a-z_]*$`, code)
		util.nonempty_string(message)
	}
}

test_sorted_reasons_orders_by_code_then_fields if {
	s := {util.reason("b", {}), util.reason("a", {"k": 2}), util.reason("a", {"k": 1})}
	[[r.code, object.get(r, "k", 0)] | some r in util.sorted_reasons(s)] == [["a", 1], ["a", 2], ["b", 0]]
	util.sorted_reasons(set()) == []
}

test_opt if {
	util.opt({"a": 1}, "a", 0) == 1
	util.opt({"a": null}, "a", 0) == 0
	util.opt({"a": false}, "a", 0) == false
	util.opt({}, "a", 0) == 0
	util.opt("str", "a", 0) == 0
	util.field("a") == 1 with input as {"a": 1}
	util.field("a") == null with input as "x"
}

test_type_helpers if {
	util.str_array([])
	util.str_array(["a"])
	not util.str_array(["a", 1])
	not util.str_array("a")
	util.pos_int(1)
	not util.pos_int(0)
	not util.pos_int(1.5)
	not util.pos_int("1")
	util.nonneg_int(0)
	not util.nonneg_int(-1)
	util.nonempty_string("x")
	not util.nonempty_string(" ")
	not util.nonempty_string(1)
}

test_approvals_ok if {
	util.approvals_ok([{"group": "a", "count": 1}, {"group": "b", "count": 2}])
	not util.approvals_ok([])
	not util.approvals_ok({"group": "a", "count": 1})
	not util.approvals_ok([{"group": "a", "count": 1}, {"group": "a", "count": 2}])
	not util.approvals_ok([{"group": "", "count": 1}])
	not util.approvals_ok([{"group": "a"}])
}

test_principal_problems if {
	util.principal_problems({"id": "a", "groups": ["g"]}, "p") == set()
	util.principal_problems({"id": "a"}, "p") == set()
	util.principal_problems({"id": "a", "groups": null}, "p") == set()
	[r.field | some r in util.principal_problems({"groups": [1]}, "p")] == ["p.groups", "p.id"]
	[r.field | some r in util.principal_problems(null, "p")] == ["p"]
}

test_membership if {
	util.member_of_any(["a", "b"], ["b"])
	not util.member_of_any(["a"], ["b"])
	not util.member_of_any([], ["b"])
	util.groups({"id": "x"}) == []
	util.groups({"groups": ["g"]}) == ["g"]
}
