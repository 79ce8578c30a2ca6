// The CLI prints ids so that two different ids never look alike, in tables and in JSON alike.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { grantsTable, id, printableJson, requestsTable } from "../../src/cli/format.ts";

const CYRILLIC_ALICE = "\u0430lice";

describe("CLI output of ids", () => {
  test("a look-alike id prints with its look-alike characters escaped, a plain one as is", () => {
    assert.equal(id("alice"), "alice");
    assert.equal(id(CYRILLIC_ALICE), "\\u{0430}lice");
    assert.equal(id("\uFF41lice"), "\\u{FF41}lice");
    assert.equal(id("ali\u200Bce"), "ali\\u{200B}ce");
    assert.notEqual(id(CYRILLIC_ALICE), id("alice"));
  });

  test("tables show the requester, subject and revoker escaped", () => {
    const requests = requestsTable([
      { id: "r1", state: "PENDING", requester: { id: CYRILLIC_ALICE }, resource: "db/orders", actions: ["write"] },
    ]);
    assert.match(requests, /\\u\{0430\}lice/);
    const grants = grantsTable([
      {
        id: "g1",
        status: "GRANT_STATUS_REVOKED",
        subject: CYRILLIC_ALICE,
        resource: "db/orders",
        actions: ["read"],
        revoke_time: { seconds: 1, nanos: 0 },
        revoked_by: "b\u043Eb",
      },
    ]);
    assert.match(grants, /\\u\{0430\}lice/);
    assert.match(grants, /by b\\u\{043E\}b/);
  });

  test("JSON output escapes everything beyond printable ASCII and parses back to the exact ids", () => {
    const value = { requester: CYRILLIC_ALICE, reviewer: "bob", comment: "looks fine \u202E" };
    const text = printableJson(value, 2);
    assert.match(text, /^[\x20-\x7e\n]*$/);
    assert.ok(text.includes("\\u0430lice"));
    assert.deepEqual(JSON.parse(text), value);
  });
});
