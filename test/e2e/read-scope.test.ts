// Need-to-know on every read, through the real server: one fixed world of requests, reviews and grants, and
// for each read RPC exactly what each kind of caller sees of it (this file's ids only) or the exact refusal.
// One server for this file; the tests that change the world come last, in the order they are written.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { accessServiceDefinition, loadAccessPackage } from "../../src/proto/loader.ts";
import {
  type AccessRequest,
  type Caller,
  type E2eServer,
  failureOf,
  type GrantWatch,
  ms,
  resumePoint,
  startE2eServer,
  status,
  tokenFor,
  type UnaryMethods,
} from "../support/api.ts";

const ORDERS = "db/orders";
const EXPORTS = "s3/analytics-exports";
const WHY = "investigating stuck orders in production";
const TICKET = "INC-1234";

/** The cast, by the name each goes by in the expectations. */
const PEOPLE = {
  alice: ["engineering"], // requester
  bob: ["dba"], // approver who reviewed (denied) one of alice's requests
  dave: ["dba"], // approver who reviewed nothing but may review alice's pending write
  frank: ["engineering"], // another requester
  svc: ["jitgate-checkers"], // a checker service
  aud: ["jitgate-auditors"],
  ada: ["jitgate-admins"],
  uma: [], // unrelated, in no group
} as const satisfies Record<string, readonly string[]>;
type Who = keyof typeof PEOPLE;
const EVERYONE = Object.keys(PEOPLE) as Who[];

const TRUSTED = "jitgate-checkers, jitgate-admins, jitgate-auditors";
const denied = (message: string) => `PERMISSION_DENIED: ${message}`;
const hiddenRequest = (id: string) =>
  `access request ${id} is not one you may read: you may read the requests you made, reviewed or may review (or it does not exist)`;
const othersGrants = (caller: Who, subject: Who) =>
  denied(`${caller} may read only their own grants; the grants of ${subject} are for members of ${TRUSTED}`);
const NO_REVOCATIONS = denied(`following revocations is for checker services, admins and auditors (members of ${TRUSTED})`);
const NO_AUDIT = denied("the audit trail is for members of jitgate-admins, jitgate-auditors");

/** The world's requests, oldest first (their labels). */
const WORLD = ["frank.exports", "alice.read", "alice.denied", "alice.pending", "alice.cancelled", "frank.read"];

type Seen = string[] | string;

describe("read scope: who sees which requests, grants, grant events, revocations and audit entries", () => {
  let server: E2eServer;
  let revocationClient: grpc.Client & { WatchRevocations: (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<Revocation> };
  /** A grant-event seq from before the world was built. */
  let point: string;
  const callers = {} as Record<Who, Caller>;
  const tokens = {} as Record<Who, string>;
  /** This file's request and grant ids, by label ("alice.read" is both the request and its grant). */
  const labels = new Map<string, string>();
  const ids: Record<string, string> = {};
  /** alice's read grant's create_time: when frank's exports grant was active too and frank's read was not yet. */
  let asOf: { seconds: string; nanos: number };

  const name = (label: string, request: AccessRequest) => {
    labels.set(request.id, label);
    ids[label] = request.id;
    if (request.grant) {
      labels.set(request.grant.id, label);
      ids[`${label}/grant`] = request.grant.id;
    }
    return request;
  };
  const ours = (found: readonly string[]) => found.flatMap((id) => labels.get(id) ?? []);
  const sortedOurs = (found: readonly string[]) => ours(found).sort();

  /** What each caller gets: the answer as labels (via `read`), or the refusal as "CODE: message". */
  async function eachCaller(who: readonly Who[], read: (caller: Caller, w: Who) => Promise<string[]>): Promise<Record<string, Seen>> {
    const seen: Record<string, Seen> = {};
    for (const w of who) seen[w] = await read(callers[w], w).catch(refusal);
    return seen;
  }

  async function allRequests(caller: Caller, filter: UnaryMethods["ListAccessRequests"][0] = {}): Promise<string[]> {
    const found: string[] = [];
    let page_token = "";
    do {
      const page = await caller.call("ListAccessRequests", { page_size: 500, ...filter, page_token });
      found.push(...page.requests.map((r) => r.id));
      page_token = page.next_page_token;
    } while (page_token !== "");
    return found;
  }

  async function allGrants(caller: Caller, filter: UnaryMethods["ListGrants"][0] = {}): Promise<string[]> {
    const found: string[] = [];
    let page_token = "";
    do {
      const page = await caller.call("ListGrants", { page_size: 500, ...filter, page_token });
      found.push(...page.grants.map((g) => g.id));
      page_token = page.next_page_token;
    } while (page_token !== "");
    return found;
  }

  function autoRead(caller: Caller, resource: string) {
    return caller.call("RequestAccess", { resource, actions: ["read"], duration: { seconds: 600 }, justification: WHY, ticket: TICKET });
  }

  async function pendingWrite(caller: Caller, resource: string) {
    const request = await caller.call("RequestAccess", {
      resource,
      actions: ["write"],
      duration: { seconds: 600 },
      justification: WHY,
      ticket: TICKET,
    });
    assert.equal(request.state, "PENDING", request.state_reason);
    return request;
  }

  before(async () => {
    server = await startE2eServer();
    point = await resumePoint(server.jitgate.address, server.dataDir);
    for (const w of EVERYONE) {
      tokens[w] = await tokenFor(server.dataDir, w, PEOPLE[w]);
      callers[w] = server.client.as(tokens[w]);
    }
    const Client = grpc.makeGenericClientConstructor(accessServiceDefinition(loadAccessPackage()), "AccessService");
    revocationClient = new Client(server.jitgate.address, grpc.credentials.createInsecure()) as unknown as typeof revocationClient;
    const { alice, bob, frank } = callers;

    const frankExports = name("frank.exports", await autoRead(frank, EXPORTS));
    const aliceRead = name("alice.read", await autoRead(alice, ORDERS));
    const toDeny = await pendingWrite(alice, ORDERS);
    name(
      "alice.denied",
      await bob.call("ReviewAccessRequest", { id: toDeny.id, decision: "REVIEW_DECISION_DENY", comment: "use a replica" }),
    );
    name("alice.pending", await pendingWrite(alice, ORDERS));
    const toCancel = await pendingWrite(alice, EXPORTS);
    name("alice.cancelled", await alice.call("CancelAccessRequest", { id: toCancel.id, reason: "not needed" }));
    const revoked = await frank.call("RevokeGrant", { grant_id: ids["frank.exports/grant"] as string, reason: "done" });
    const frankRead = name("frank.read", await autoRead(frank, ORDERS));

    // The world as the tests below expect it.
    const states = Object.fromEntries(
      await Promise.all(WORLD.map(async (l) => [l, (await callers.ada.call("GetAccessRequest", { id: ids[l] as string })).state])),
    );
    assert.deepEqual(states, {
      "frank.exports": "APPROVED",
      "alice.read": "APPROVED",
      "alice.denied": "DENIED",
      "alice.pending": "PENDING",
      "alice.cancelled": "CANCELLED",
      "frank.read": "APPROVED",
    });
    assert.ok(aliceRead.grant && frankExports.grant);
    asOf = aliceRead.grant.create_time as typeof asOf;
    assert.ok(ms(frankExports.grant.create_time) <= ms(asOf), "frank's exports grant was made first");
    assert.ok(ms(revoked.revoke_time) > ms(asOf), "and revoked after alice's read grant was made");
    assert.ok(ms(frankRead.grant?.create_time) > ms(asOf), "and frank's read grant after it");
  });
  after(async () => {
    revocationClient.close();
    await server.close();
  });

  test("GetAccessRequest: each caller reads exactly the requests that are theirs, reviewed by them or awaiting their review", async () => {
    const unknown = randomUUID();
    const refusals: string[] = [];
    const seen = await eachCaller(EVERYONE, async (caller, w) => {
      const read: string[] = [];
      for (const label of [...WORLD, "made-up"]) {
        const id = ids[label] ?? unknown;
        try {
          const request = await caller.call("GetAccessRequest", { id });
          assert.equal(request.id, id);
          assert.equal(request.justification, WHY, "a readable request is read whole, justification included");
          read.push(label);
        } catch (err) {
          const expected = ["aud", "ada"].includes(w) ? `NOT_FOUND: access request ${id} does not exist` : denied(hiddenRequest(id));
          if (refusal(err) !== expected) refusals.push(`${w} ${label}: ${refusal(err)}`);
        }
      }
      return read;
    });
    assert.deepEqual(seen, {
      alice: ["alice.read", "alice.denied", "alice.pending", "alice.cancelled"],
      bob: ["alice.denied", "alice.pending"],
      dave: ["alice.pending"],
      frank: ["frank.exports", "frank.read"],
      svc: [],
      aud: WORLD,
      ada: WORLD,
      uma: [],
    });
    assert.deepEqual(
      refusals,
      [],
      "every refusal is PERMISSION_DENIED naming the rule (NOT_FOUND for an unknown id, to admins and auditors)",
    );
  });

  test("GetAccessRequest: to an outsider a hidden request and a made-up id give the same code and message, apart from the id", async () => {
    for (const w of ["uma", "svc", "dave"] as const) {
      const hidden = ids[w === "dave" ? "alice.read" : "alice.pending"] as string;
      const madeUp = randomUUID();
      const masked = async (id: string) => {
        const f = await failureOf(callers[w].call("GetAccessRequest", { id }));
        return { code: status[f.code], message: f.message.replaceAll(id, "<id>"), details: f.details };
      };
      const [real, fake] = [await masked(hidden), await masked(madeUp)];
      assert.deepEqual(real, fake, `${w}: hidden and unknown must look alike`);
      assert.deepEqual(real, { code: "PERMISSION_DENIED", message: hiddenRequest("<id>"), details: undefined });
    }
  });

  test("ListAccessRequests without a filter: the same sets as GetAccessRequest", async () => {
    assert.deepEqual(await eachCaller(EVERYONE, async (c) => sortedOurs(await allRequests(c))), {
      alice: ["alice.cancelled", "alice.denied", "alice.pending", "alice.read"],
      bob: ["alice.denied", "alice.pending"],
      dave: ["alice.pending"],
      frank: ["frank.exports", "frank.read"],
      svc: [],
      aud: ["alice.cancelled", "alice.denied", "alice.pending", "alice.read", "frank.exports", "frank.read"],
      ada: ["alice.cancelled", "alice.denied", "alice.pending", "alice.read", "frank.exports", "frank.read"],
      uma: [],
    });
  });

  test("ListAccessRequests for requester alice narrows each caller's view to alice's; nobody is refused", async () => {
    assert.deepEqual(await eachCaller(EVERYONE, async (c) => sortedOurs(await allRequests(c, { requester: "alice" }))), {
      alice: ["alice.cancelled", "alice.denied", "alice.pending", "alice.read"],
      bob: ["alice.denied", "alice.pending"],
      dave: ["alice.pending"],
      frank: [],
      svc: [],
      aud: ["alice.cancelled", "alice.denied", "alice.pending", "alice.read"],
      ada: ["alice.cancelled", "alice.denied", "alice.pending", "alice.read"],
      uma: [],
    });
  });

  test("ListAccessRequests state PENDING is an approver's inbox: alice's pending write, not her decided ones nor frank's", async () => {
    assert.deepEqual(await eachCaller(EVERYONE, async (c) => sortedOurs(await allRequests(c, { state: "PENDING" }))), {
      alice: ["alice.pending"],
      bob: ["alice.pending"],
      dave: ["alice.pending"],
      frank: [],
      svc: [],
      aud: ["alice.pending"],
      ada: ["alice.pending"],
      uma: [],
    });
  });

  test("paging with next_page_token walks exactly the visible set, newest first, even when pages come back short", async () => {
    const walk = async (w: Who, page_size: number) => {
      const pages: string[][] = [];
      let page_token = "";
      do {
        const page = await callers[w].call("ListAccessRequests", { page_size, page_token });
        assert.ok(page.requests.length <= page_size, `${w}: a page of ${page.requests.length} for page_size ${page_size}`);
        pages.push(ours(page.requests.map((r) => r.id)));
        page_token = page.next_page_token;
        assert.ok(pages.length < 100, `${w}: the walk does not end`);
      } while (page_token !== "");
      return pages;
    };
    const bobPages = await walk("bob", 1);
    assert.deepEqual(bobPages.flat(), ["alice.pending", "alice.denied"]);
    assert.ok(
      bobPages.some((p) => p.length < 1),
      "the last page of a filtered walk may be short (here: empty)",
    );
    assert.deepEqual((await walk("dave", 1)).flat(), ["alice.pending"]);
    assert.deepEqual((await walk("alice", 2)).flat(), ["alice.cancelled", "alice.pending", "alice.denied", "alice.read"]);
    assert.deepEqual((await walk("uma", 1)).flat(), []);
    assert.deepEqual((await walk("aud", 2)).flat(), [
      "frank.read",
      "alice.cancelled",
      "alice.pending",
      "alice.denied",
      "alice.read",
      "frank.exports",
    ]);
  });

  test("ListGrants without a filter: one's own active grants; checkers, auditors and admins see everyone's", async () => {
    assert.deepEqual(await eachCaller(EVERYONE, async (c) => sortedOurs(await allGrants(c))), {
      alice: ["alice.read"],
      bob: [],
      dave: [],
      frank: ["frank.read"],
      svc: ["alice.read", "frank.read"],
      aud: ["alice.read", "frank.read"],
      ada: ["alice.read", "frank.read"],
      uma: [],
    });
  });

  test("ListGrants for one's own subject is the same as without a filter", async () => {
    assert.deepEqual(await eachCaller(EVERYONE, async (c, w) => sortedOurs(await allGrants(c, { subject: w }))), {
      alice: ["alice.read"],
      bob: [],
      dave: [],
      frank: ["frank.read"],
      svc: [],
      aud: [],
      ada: [],
      uma: [],
    });
  });

  test("ListGrants for another subject is refused, naming the rule, to all but checkers, auditors and admins", async () => {
    const other = (w: Who): Who => (w === "alice" ? "frank" : "alice");
    assert.deepEqual(await eachCaller(EVERYONE, async (c, w) => sortedOurs(await allGrants(c, { subject: other(w) }))), {
      alice: othersGrants("alice", "frank"),
      bob: othersGrants("bob", "alice"),
      dave: othersGrants("dave", "alice"),
      frank: othersGrants("frank", "alice"),
      svc: ["alice.read"],
      aud: ["alice.read"],
      ada: ["alice.read"],
      uma: othersGrants("uma", "alice"),
    });
  });

  test("ListGrants include_inactive adds one's own ended grants, and only those", async () => {
    assert.deepEqual(await eachCaller(EVERYONE, async (c) => sortedOurs(await allGrants(c, { include_inactive: true }))), {
      alice: ["alice.read"],
      bob: [],
      dave: [],
      frank: ["frank.exports", "frank.read"],
      svc: ["alice.read", "frank.exports", "frank.read"],
      aud: ["alice.read", "frank.exports", "frank.read"],
      ada: ["alice.read", "frank.exports", "frank.read"],
      uma: [],
    });
  });

  test("ListGrants as_of a past time shows the grants active then, within the same scope", async () => {
    assert.deepEqual(await eachCaller(EVERYONE, async (c) => sortedOurs(await allGrants(c, { as_of: asOf }))), {
      alice: ["alice.read"],
      bob: [],
      dave: [],
      frank: ["frank.exports"],
      svc: ["alice.read", "frank.exports"],
      aud: ["alice.read", "frank.exports"],
      ada: ["alice.read", "frank.exports"],
      uma: [],
    });
  });

  test("ListAuditEntries is for auditors and admins only, whatever the filter", async () => {
    const trail = async (c: Caller, subject?: string) => {
      const entries: string[] = [];
      let page_token = "";
      do {
        const page = await c.call("ListAuditEntries", { page_size: 500, page_token, ...(subject ? { subject } : {}) });
        for (const e of page.entries) {
          const label = labels.get(e.request_id) ?? labels.get(e.grant_id);
          if (label) entries.push(`${e.kind} ${label}`);
        }
        page_token = page.next_page_token;
      } while (page_token !== "");
      return entries;
    };
    const seen = await eachCaller(EVERYONE, (c) => trail(c));
    const full = seen.aud;
    assert.ok(Array.isArray(full));
    assert.deepEqual([...new Set(full.map((e) => e.split(" ")[1]))].sort(), [
      "alice.cancelled",
      "alice.denied",
      "alice.pending",
      "alice.read",
      "frank.exports",
      "frank.read",
    ]);
    assert.deepEqual(seen, {
      alice: NO_AUDIT,
      bob: NO_AUDIT,
      dave: NO_AUDIT,
      frank: NO_AUDIT,
      svc: NO_AUDIT,
      aud: full,
      ada: full,
      uma: NO_AUDIT,
    });
    // Asking only about oneself changes nothing; bob's own trail is what he did, for auditors.
    assert.deepEqual(await eachCaller(["alice", "bob", "svc", "uma"], (c, w) => trail(c, w)), {
      alice: NO_AUDIT,
      bob: NO_AUDIT,
      svc: NO_AUDIT,
      uma: NO_AUDIT,
    });
    assert.deepEqual(new Set(await trail(callers.aud, "bob")), new Set(["REVIEW_RECORDED alice.denied", "REQUEST_DENIED alice.denied"]));
  });

  test("WatchGrants: a replay from before the world and live events deliver each caller only the grants they may read", async () => {
    // The watches open from a seq taken before the world was built, so each first replays the world, then
    // goes live (headers mean subscribed); the last grant each may see ends its reading.
    const watchers: Who[] = ["alice", "frank", "svc", "aud", "ada", "uma"];
    const watches = Object.fromEntries(watchers.map((w) => [w, callers[w].watch({ after_seq: point })])) as Record<string, GrantWatch>;
    const refused = {
      alice: callers.alice.watch({ subject: "frank", after_seq: point }),
      bob: callers.bob.watch({ subject: "alice", after_seq: point }),
      dave: callers.dave.watch({ subject: "alice", after_seq: point }),
      uma: callers.uma.watch({ subject: "frank", after_seq: point }),
    };
    const svcOnFrank = callers.svc.watch({ subject: "frank", after_seq: point });
    const all = [...Object.values(watches), ...Object.values(refused), svcOnFrank];
    try {
      await Promise.all([...Object.values(watches), svcOnFrank].map((w) => once(w.stream, "metadata")));
      const refusals: Record<string, Seen> = {};
      for (const [w, watch] of Object.entries(refused)) refusals[w] = await watch.next().then(() => "an event", refusal);
      assert.deepEqual(refusals, {
        alice: othersGrants("alice", "frank"),
        bob: othersGrants("bob", "alice"),
        dave: othersGrants("dave", "alice"),
        uma: othersGrants("uma", "frank"),
      });

      // Live: frank's first, so a leak to alice would show before her own; uma, who joined analytics, last.
      name("frank.exports2", await autoRead(callers.frank, EXPORTS));
      name("alice.exports", await autoRead(callers.alice, EXPORTS));
      name("uma.exports", await autoRead(server.client.as(await tokenFor(server.dataDir, "uma", ["analytics"])), EXPORTS));

      const until = async (watch: GrantWatch, last: string) => {
        const seen: string[] = [];
        for (;;) {
          const e = await watch.next();
          const label = labels.get(e.grant.id);
          if (!label) continue;
          seen.push(`${e.kind.replace("GRANT_EVENT_KIND_", "")} ${label}`);
          if (label === last) return seen;
        }
      };
      const everything = [
        "CREATED frank.exports",
        "CREATED alice.read",
        "REVOKED frank.exports",
        "CREATED frank.read",
        "CREATED frank.exports2",
        "CREATED alice.exports",
        "CREATED uma.exports",
      ];
      const frankOnly = ["CREATED frank.exports", "REVOKED frank.exports", "CREATED frank.read", "CREATED frank.exports2"];
      assert.deepEqual(
        {
          alice: await until(watches.alice as GrantWatch, "alice.exports"),
          frank: await until(watches.frank as GrantWatch, "frank.exports2"),
          svc: await until(watches.svc as GrantWatch, "uma.exports"),
          aud: await until(watches.aud as GrantWatch, "uma.exports"),
          ada: await until(watches.ada as GrantWatch, "uma.exports"),
          uma: await until(watches.uma as GrantWatch, "uma.exports"),
          "svc on frank": await until(svcOnFrank, "frank.exports2"),
        },
        {
          alice: ["CREATED alice.read", "CREATED alice.exports"],
          frank: frankOnly,
          svc: everything,
          aud: everything,
          ada: everything,
          uma: ["CREATED uma.exports"],
          "svc on frank": frankOnly,
        },
      );
    } finally {
      for (const w of all) w.close();
    }
  });

  test("WatchRevocations: checkers, auditors and admins follow everyone's revocations; anyone else is refused", async () => {
    const watches = Object.fromEntries(EVERYONE.map((w) => [w, revocations(tokens[w], point)]));
    try {
      const followers = ["svc", "aud", "ada"] as const;
      await Promise.all(followers.map((w) => once((watches[w] as RevocationWatch).stream, "metadata")));
      await callers.alice.call("RevokeGrant", { grant_id: ids["alice.read/grant"] as string, reason: "done" });
      await callers.ada.call("RevokeGrant", { grant_id: ids["frank.read/grant"] as string, reason: "left the team" });

      const seen = await eachCaller(EVERYONE, async (_, w) => {
        const watch = watches[w] as RevocationWatch;
        const got: string[] = [];
        while (got.at(-1) !== "frank.read") {
          const label = labels.get((await watch.next()).grant_id);
          if (label) got.push(label);
        }
        return got;
      });
      const all = ["frank.exports", "alice.read", "frank.read"];
      assert.deepEqual(seen, {
        alice: NO_REVOCATIONS,
        bob: NO_REVOCATIONS,
        dave: NO_REVOCATIONS,
        frank: NO_REVOCATIONS,
        svc: all,
        aud: all,
        ada: all,
        uma: NO_REVOCATIONS,
      });
      // A checker reads everyone's grants, ended ones included, but still no request that is not its own.
      assert.deepEqual(sortedOurs(await allGrants(callers.svc, { subject: "frank", include_inactive: true })), [
        "frank.exports",
        "frank.exports2",
        "frank.read",
      ]);
      assert.deepEqual(sortedOurs(await allRequests(callers.svc)), []);
    } finally {
      for (const w of Object.values(watches)) w.close();
    }
  });

  test("an approver keeps seeing a request after reviewing it; the others' inbox view ends with the decision", async () => {
    const pending = ids["alice.pending"] as string;
    const reviewed = await callers.dave.call("ReviewAccessRequest", { id: pending, decision: "REVIEW_DECISION_APPROVE" });
    assert.equal(reviewed.state, "PENDING", "a security approval is still missing");
    const inbox = (w: Who) => allRequests(callers[w], { state: "PENDING" }).then(sortedOurs);
    assert.deepEqual(await inbox("dave"), ["alice.pending"]);
    assert.equal((await callers.dave.call("GetAccessRequest", { id: pending })).reviews.length, 1);
    assert.deepEqual(await inbox("bob"), ["alice.pending"], "bob may still deny it");

    const carol = await server.as("carol", ["security"]);
    assert.deepEqual(sortedOurs(await allRequests(carol)), ["alice.pending"], "carol's inbox");
    const approved = await carol.call("ReviewAccessRequest", { id: pending, decision: "REVIEW_DECISION_APPROVE" });
    assert.equal(approved.state, "APPROVED");

    assert.deepEqual(await eachCaller(["dave", "bob"], async (c) => sortedOurs(await allRequests(c))), {
      dave: ["alice.pending"],
      bob: ["alice.denied"],
    });
    assert.deepEqual(sortedOurs(await allRequests(carol)), ["alice.pending"]);
    assert.equal(
      refusal(await callers.bob.call("GetAccessRequest", { id: pending }).catch((e: unknown) => e)),
      denied(hiddenRequest(pending)),
    );
  });

  // ---- WatchRevocations, which the shared client does not speak

  interface Revocation {
    seq: string;
    grant_id: string;
  }
  interface RevocationWatch {
    readonly stream: grpc.ClientReadableStream<Revocation>;
    next(): Promise<Revocation>;
    close(): void;
  }

  /** A WatchRevocations stream from `afterSeq`, read one event at a time with a bounded wait. */
  function revocations(token: string, afterSeq: string): RevocationWatch {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${token}`);
    const stream = revocationClient.WatchRevocations({ after_seq: afterSeq }, md);
    const buffered: Revocation[] = [];
    let ended: Error | undefined;
    let wake: (() => void) | undefined;
    stream.on("data", (e: Revocation) => {
      buffered.push(e);
      wake?.();
    });
    stream.on("error", (err: Error) => {
      ended ??= err;
      wake?.();
    });
    return {
      stream,
      async next() {
        const deadline = Date.now() + 5_000;
        while (buffered.length === 0) {
          if (ended) throw ended;
          const waited = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), deadline - Date.now());
            wake = () => {
              clearTimeout(timer);
              resolve(true);
            };
          });
          if (!waited) throw new Error("no revocation within 5000 ms");
        }
        return buffered.shift() as Revocation;
      },
      close: () => stream.cancel(),
    };
  }
});

/** A failed call as "CODE: message"; rethrows anything that is not a gRPC status. */
function refusal(err: unknown): string {
  const e = err as grpc.ServiceError;
  if (typeof e?.code !== "number") throw err;
  return `${status[e.code]}: ${e.details}`;
}
