// The access domain in process, as the domain tests run it: an Access over a real SQLite store, the real compiled
// policy bundle, a token service keyed in a temp dir, a clock the test controls and a decision sink that keeps
// every record. The policy and token service are loaded once per test file (openAccessDomains); each test opens
// its own domain on a fresh SQLite file (AccessDomains.open).
import assert from "node:assert/strict";
import { join } from "node:path";
import { Access } from "../../src/access/access.ts";
import { ChangeFeed } from "../../src/access/feed.ts";
import { LiveGrantIndex } from "../../src/access/live-grants.ts";
import type { DecisionRecord } from "../../src/access/model.ts";
import type { AccessStore, PolicyDecider } from "../../src/access/ports.ts";
import { loadBundleFile } from "../../src/policy/bundle.ts";
import { PolicyEngine } from "../../src/policy/engine.ts";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite.ts";
import { parseTokenConfig, TokenService } from "../../src/tokens/index.ts";
import { REAL_BUNDLE, removeDir, tempDir } from "./bundles.ts";

/**
 * A request to write db/orders: high tier on the real policy, one dba and one security approval by distinct
 * approvers (policies/catalog/data.json).
 */
export const writeOrders = {
  resource: "db/orders",
  actions: ["write"],
  durationS: 1800,
  justification: "repair orders stuck in the PAYING state",
  ticket: "INC-123",
  emergency: false,
  clientKey: "",
};

/** One domain on its own SQLite file. */
export interface AccessDomain {
  readonly access: Access;
  /** The store itself (not the view given to the domain, if `storeView` was used), to inspect what was written. */
  readonly store: SqliteStore;
  /** Every decision record the domain made, in order. */
  readonly decisions: DecisionRecord[];
  /** Stops the domain and closes its store. */
  close(): void;
}

export interface OpenAccessDomainOptions {
  /** The SQLite file; default a fresh numbered file in the temp dir. */
  readonly file?: string;
  /** What the domain sees of the store (a spy, say); default the store itself. */
  readonly storeView?: (store: SqliteStore) => AccessStore;
  /** What the domain sees of the policy (one that pauses, say); default the real compiled policy. */
  readonly policyView?: (policy: PolicyEngine) => PolicyDecider;
}

/** What a test file's domains share. */
export interface AccessDomains {
  /** The temp dir the token keys (and by default the stores) are in. */
  readonly dir: string;
  /** The real compiled policy, activated. */
  readonly policy: PolicyEngine;
  /** Keyed in `dir`, on the domains' clock. */
  readonly tokens: TokenService;
  /** A domain on a fresh store, with ids id-1, id-2, ... */
  open(options?: OpenAccessDomainOptions): AccessDomain;
  /** Removes the temp dir (close the domains first). */
  remove(): Promise<void>;
}

const ADMIN_GROUPS = ["jitgate-admins"];
const AUDITOR_GROUPS = ["auditors"];
const CHECKER_GROUPS = ["services"];

/** The policy and token service for a test file's domains, all on the clock `now`. */
export async function openAccessDomains(now: () => number): Promise<AccessDomains> {
  const dir = await tempDir();
  const tokens = await TokenService.open(parseTokenConfig({ dataDir: dir }, dir), { now });
  const policy = new PolicyEngine();
  policy.activate(await loadBundleFile(REAL_BUNDLE));
  let stores = 0;
  return {
    dir,
    policy,
    tokens,
    open({ file = join(dir, `domain-${++stores}.db`), storeView, policyView } = {}) {
      const store = openSqliteStore(file);
      const seen = storeView ? storeView(store) : store;
      const decisions: DecisionRecord[] = [];
      let ids = 0;
      const access = new Access(
        {
          store: seen,
          policy: policyView ? policyView(policy) : policy,
          clock: { now },
          newId: () => `id-${++ids}`,
          feed: new ChangeFeed(seen),
          liveGrants: new LiveGrantIndex(store, now()),
          adminGroups: ADMIN_GROUPS,
          auditorGroups: AUDITOR_GROUPS,
          checkerGroups: CHECKER_GROUPS,
          tokens,
          decisions: { admit: () => true, record: (d) => decisions.push(d) },
        },
        (err) => assert.fail(String(err)),
      );
      return {
        access,
        store,
        decisions,
        close() {
          access.stop();
          store.close();
        },
      };
    },
    remove: () => removeDir(dir),
  };
}
