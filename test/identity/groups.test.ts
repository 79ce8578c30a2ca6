// Group names are exact: the mTLS groups file refuses a name with surrounding whitespace or an invisible
// character, and the role groups an operator configures match callers' groups exactly and case-sensitively.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type AccessDeps, isAdmin } from "../../src/access/deps.ts";
import { loadServeConfig } from "../../src/config.ts";
import { InvalidArgument } from "../../src/errors.ts";
import { loadCertificateGroups } from "../../src/identity/authenticator.ts";
import { REAL_BUNDLE, ROOT } from "../support/bundles.ts";

const SPIFFE_ID = "spiffe://example.org/ns/ops/sa/deployer";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "jitgate-groups-"));
});
after(() => rm(dir, { recursive: true, force: true }));

async function groupsFile(name: string, content: unknown): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, JSON.stringify(content));
  return file;
}

describe("the mTLS groups file", () => {
  test("group names are kept exactly as written: case and inner spaces included", async () => {
    const file = await groupsFile("exact.json", { [SPIFFE_ID]: ["Jitgate-Admins", "jitgate-admins", "Domain Admins", "dba"] });
    assert.deepEqual((await loadCertificateGroups(file)).get(SPIFFE_ID), ["Jitgate-Admins", "jitgate-admins", "Domain Admins", "dba"]);
  });

  test("a group with surrounding whitespace or an invisible character is refused, naming the file and the identity", async () => {
    const cases: [string, RegExp][] = [
      ["jitgate-admins ", /group 2 of 'spiffe:\/\/example\.org\/ns\/ops\/sa\/deployer' has surrounding whitespace/],
      [" jitgate-admins", /has surrounding whitespace/],
      ["jitgate-admins\t", /holds an invisible, control or format character \(U\+0009 at position 14\)/],
      ["jitgate\u200badmins", /U\+200B at position 7/],
      ["jitgate-admins\u2029", /U\+2029/],
      ["\ufeffjitgate-admins", /U\+FEFF at position 0/],
    ];
    for (const [i, [group, reason]] of cases.entries()) {
      const file = await groupsFile(`bad-${i}.json`, { [SPIFFE_ID]: ["dba", group] });
      const err = await loadCertificateGroups(file).then(
        () => assert.fail(`${JSON.stringify(group)} was accepted`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof InvalidArgument, String(err));
      assert.equal(err.field, "--mtls-groups (JITGATE_MTLS_GROUPS)");
      assert.ok(err.message.includes(file), err.message);
      assert.match(err.message, reason);
    }
  });

  test("an empty group name is refused (as before)", async () => {
    const file = await groupsFile("empty.json", { [SPIFFE_ID]: [""] });
    await assert.rejects(loadCertificateGroups(file), /must be a list of non-empty strings/);
  });
});

describe("role groups (--admin-groups, --auditor-groups, --checker-groups)", () => {
  const serveConfig = (flags: { adminGroups?: string; auditorGroups?: string; checkerGroups?: string }) =>
    loadServeConfig(
      { listen: "127.0.0.1:0", metricsListen: "off", dataDir: join(dir, "data"), bundle: REAL_BUNDLE, dev: true, ...flags },
      {},
      ROOT,
    );

  test("the operator's comma-separated list is trimmed around each name, and empty items dropped", () => {
    const config = serveConfig({ adminGroups: " jitgate-admins , sec-leads ,", auditorGroups: "audit", checkerGroups: "svc-a,svc-b" });
    assert.deepEqual(config.adminGroups, ["jitgate-admins", "sec-leads"]);
    assert.deepEqual(config.auditorGroups, ["audit"]);
    assert.deepEqual(config.checkerGroups, ["svc-a", "svc-b"]);
  });

  test("a configured admin group matches a caller's group exactly and case-sensitively", () => {
    const deps = { adminGroups: serveConfig({}).adminGroups } as unknown as AccessDeps;
    assert.equal(isAdmin(deps, { id: "ada", groups: ["jitgate-admins"] }), true);
    for (const lookalike of ["Jitgate-Admins", "JITGATE-ADMINS", "jitgate-admins ", "jitgate-admins\u200b", "jitgate-admin"]) {
      assert.equal(isAdmin(deps, { id: "mallory", groups: [lookalike] }), false, JSON.stringify(lookalike));
    }
  });
});
