// Who may ask whether a subject has access: the subject, the services in a checker group, admins and auditors.
// Anyone else probing others' access is refused, and the attempt is in the decision log.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { DECISIONS_FILE, withDecisionsReadOnly } from "../../src/store/decision-store.ts";
import { type Caller, type E2eServer, failsWith, orderReadGrant, startE2eServer, status } from "../support/api.ts";

const FROM_OFFICE = { source_ip: "10.1.2.3" };
const about = (subject: string) => ({ subject, resource: "db/orders", action: "read", context: FROM_OFFICE });

describe("who may Check", () => {
  let server: E2eServer;
  let holder: Caller;
  before(async () => {
    server = await startE2eServer();
    holder = await server.as("hana", ["engineering"]);
    await orderReadGrant(holder);
  });
  after(() => server.close());

  test("a subject may check its own access; a checker service, an admin and an auditor may check anyone's", async () => {
    assert.equal((await holder.call("Check", about("hana"))).allow, true);
    for (const [id, groups] of [
      ["svc-orders", ["jitgate-checkers"]],
      ["ada", ["jitgate-admins"]],
      ["aude", ["jitgate-auditors"]],
    ] as const) {
      assert.equal((await (await server.as(id, [...groups])).call("Check", about("hana"))).allow, true, id);
    }
  });

  test("anyone else is refused, naming the groups, and the attempt is recorded", async () => {
    const nosy = await server.as("nico", ["engineering"]);
    const failure = await failsWith(status.PERMISSION_DENIED, nosy.call("Check", about("hana")));
    assert.match(failure.message, /nico may check only its own access; checking others is for members of jitgate-checkers/);
    await server.jitgate.decisionLog.flush();
    const records = withDecisionsReadOnly(join(server.dataDir, DECISIONS_FILE), (reads) => reads.list({ subject: "hana" }, 100));
    const attempt = records.find((d) => d.caller === "nico");
    assert.ok(attempt, "the refused check is in the decision log");
    assert.deepEqual([attempt.allow, attempt.reasons[0]?.code], [false, "caller_may_not_check"]);
  });
});
