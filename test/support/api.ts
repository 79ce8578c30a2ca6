// A small client of jit.v1.AccessService for the end-to-end tests: calls as a given caller (a dev token),
// grant watches read event by event with bounded waits, and failures decoded into code, message and details.
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import type { Jitgate } from "../../src/app.ts";
import type { ServeFlags } from "../../src/config.ts";
import { issueDevToken } from "../../src/identity/dev-issuer.ts";
import { accessServiceDefinition, loadAccessPackage } from "../../src/proto/loader.ts";
import { errorDetailsOf, type WireErrorDetails } from "../../src/server/grpc/status.ts";
import { removeDir, tempDir } from "./bundles.ts";
import { startTestJitgate } from "./jitgate.ts";

// ---- jit.v1 messages as proto-loader presents them (snake_case, enums by name, int64 as strings)

export interface Timestamp {
  seconds: string;
  nanos: number;
}
export interface Duration {
  seconds: string | number;
  nanos?: number;
}
export interface Reason {
  code: string;
  message: string;
  details: Record<string, string>;
}
export type RequestState = "REQUEST_STATE_UNSPECIFIED" | "PENDING" | "APPROVED" | "DENIED" | "CANCELLED" | "EXPIRED";
export type GrantStatus = "GRANT_STATUS_ACTIVE" | "GRANT_STATUS_EXPIRED" | "GRANT_STATUS_REVOKED";
export type GrantEventKind = "GRANT_EVENT_KIND_CREATED" | "GRANT_EVENT_KIND_REVOKED" | "GRANT_EVENT_KIND_EXPIRED";

export interface Grant {
  id: string;
  request_id: string;
  subject: string;
  resource: string;
  actions: string[];
  audience: string;
  break_glass: boolean;
  create_time: Timestamp | null;
  expire_time: Timestamp | null;
  revoke_time: Timestamp | null;
  revoked_by: string;
  revoke_reason: string;
  policy_revision: string;
  status: GrantStatus;
}

export interface AccessRequest {
  id: string;
  requester: { id: string; groups: string[] };
  resource: string;
  actions: string[];
  requested_duration: Duration | null;
  granted_duration: Duration | null;
  justification: string;
  ticket: string;
  emergency: boolean;
  state: RequestState;
  state_reason: string;
  reasons: Reason[];
  approvals: { group: string; required: number; received: number }[];
  reviews: { reviewer: { id: string; groups: string[] }; decision: string; comment: string; counts_toward: string[] }[];
  grant: Grant | null;
  break_glass: boolean;
  notify: string[];
  policy_revision: string;
  create_time: Timestamp | null;
  pending_until: Timestamp | null;
  decide_time: Timestamp | null;
  client_request_id: string;
}

export interface CheckResponse {
  allow: boolean;
  reasons: Reason[];
  decision_id: string;
  grant_id: string;
  grant_expire_time: Timestamp | null;
  standing: boolean;
  policy_revision: string;
}

export interface AuditEntry {
  seq: string;
  time: Timestamp | null;
  kind: string;
  actor: string;
  subject: string;
  resource: string;
  request_id: string;
  grant_id: string;
  reason: string;
  policy_revision: string;
  details_json: string;
  prev_hash: string;
  hash: string;
}

export interface GrantEvent {
  seq: string;
  kind: GrantEventKind;
  time: Timestamp | null;
  grant: Grant;
}

export interface RequestAccessRequest {
  resource: string;
  actions: string[];
  duration: Duration;
  justification?: string;
  ticket?: string;
  emergency?: boolean;
  wait?: boolean;
  client_request_id?: string;
}

export interface WatchGrantsRequest {
  subject?: string;
  resource?: string;
  after_seq?: string;
}

/** Each unary method: [request, response]. */
export interface UnaryMethods {
  RequestAccess: [RequestAccessRequest, AccessRequest];
  GetAccessRequest: [{ id: string }, AccessRequest];
  ListAccessRequests: [
    { state?: RequestState; requester?: string; resource?: string; page_size?: number; page_token?: string },
    { requests: AccessRequest[]; next_page_token: string },
  ];
  ReviewAccessRequest: [{ id: string; decision: "REVIEW_DECISION_APPROVE" | "REVIEW_DECISION_DENY"; comment?: string }, AccessRequest];
  CancelAccessRequest: [{ id: string; reason?: string }, AccessRequest];
  Check: [
    { subject?: string; subject_groups?: string[]; token?: string; resource: string; action: string; context?: Record<string, string> },
    CheckResponse,
  ];
  IssueToken: [{ grant_id: string }, { token: string; expire_time: Timestamp; token_id: string; grant_id: string; audience: string }];
  GetJwks: [Record<string, never>, { jwks_json: string }];
  ListGrants: [
    { subject?: string; resource?: string; include_inactive?: boolean; as_of?: Timestamp; page_size?: number; page_token?: string },
    { grants: Grant[]; next_page_token: string },
  ];
  RevokeGrant: [{ grant_id: string; reason?: string }, Grant];
  RevokeSubject: [{ subject: string; reason?: string }, { revoked: Grant[] }];
  ListAuditEntries: [
    { subject?: string; resource?: string; since?: Timestamp; until?: Timestamp; page_size?: number; page_token?: string },
    { entries: AuditEntry[]; next_page_token: string },
  ];
}
export type UnaryMethod = keyof UnaryMethods;

// ---- the client

const DEFAULT_DEADLINE_MS = 10_000;

type UnaryFn = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
type StreamFn = (req: object, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<GrantEvent>;
const AccessClient = grpc.makeGenericClientConstructor(accessServiceDefinition(loadAccessPackage()), "AccessService");

export interface Caller {
  call<M extends UnaryMethod>(method: M, request: UnaryMethods[M][0], opts?: { deadlineMs?: number }): Promise<UnaryMethods[M][1]>;
  watch(request: WatchGrantsRequest): GrantWatch;
}

export interface Api {
  /** Calls as the holder of `token` (no `authorization` metadata at all when undefined). */
  as(token: string | undefined): Caller;
  close(): void;
}

/** One channel to `address`; every caller made by `as` shares it. */
export function api(address: string): Api {
  const client = new AccessClient(address, grpc.credentials.createInsecure()) as unknown as grpc.Client &
    Record<string, UnaryFn & StreamFn>;
  const metadata = (token: string | undefined) => {
    const md = new grpc.Metadata();
    if (token !== undefined) md.set("authorization", `Bearer ${token}`);
    return md;
  };
  return {
    as: (token) => ({
      call: (method, request, opts = {}) =>
        new Promise((resolve, reject) => {
          const deadline = Date.now() + (opts.deadlineMs ?? DEFAULT_DEADLINE_MS);
          (client[method] as UnaryFn).call(client, request, metadata(token), { deadline }, (err, res) =>
            err ? reject(err) : resolve(res as never),
          );
        }),
      watch: (request) => new GrantWatch((client.WatchGrants as StreamFn).call(client, request, metadata(token), {})),
    }),
    close: () => client.close(),
  };
}

/**
 * An engineer's read on db/orders, which the catalogue auto-approves, and a token for it. jitgate allows one
 * live grant per requester and resource, so give each call a caller of its own.
 */
export async function orderReadGrant(
  caller: Caller,
  seconds = 600,
): Promise<{ grant: Grant; grantId: string; token: string; tokenExpiresAt: number }> {
  const request = await caller.call("RequestAccess", {
    resource: "db/orders",
    actions: ["read"],
    duration: { seconds },
    justification: "reading stuck orders for INC-77",
    ticket: "INC-77",
  });
  if (request.state !== "APPROVED" || !request.grant) throw new Error(`read on db/orders not auto-approved: ${request.state_reason}`);
  const issued = await caller.call("IssueToken", { grant_id: request.grant.id });
  return { grant: request.grant, grantId: request.grant.id, token: issued.token, tokenExpiresAt: ms(issued.expire_time) };
}

/** Metadata carrying `authorization: Bearer <token>`, for callMetadata options. */
export function bearerMetadata(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

/** A dev token for `id` in `groups`, accepted by a `--dev` server on `dataDir`. */
export function tokenFor(dataDir: string, id: string, groups: readonly string[]): Promise<string> {
  return issueDevToken({ dataDir, subject: id, groups, ttlSeconds: 3600 });
}

/** A jitgate server in-process with its own data directory, and a client to it. */
export interface E2eServer {
  readonly dataDir: string;
  readonly jitgate: Jitgate;
  readonly client: Api;
  /** A caller `id` in `groups`. */
  as(id: string, groups: readonly string[]): Promise<Caller>;
  close(): Promise<void>;
}

export async function startE2eServer(flags: ServeFlags = {}): Promise<E2eServer> {
  const dataDir = await tempDir("jitgate-e2e-");
  const jitgate = await startTestJitgate(dataDir, flags);
  const client = api(jitgate.address);
  return {
    dataDir,
    jitgate,
    client,
    as: async (id, groups) => client.as(await tokenFor(dataDir, id, groups)),
    async close() {
      client.close();
      await jitgate.close();
      await removeDir(dataDir);
    },
  };
}

/** A WatchGrants stream read one event at a time; each wait is bounded, so a missing event fails the test. */
export class GrantWatch {
  readonly stream: grpc.ClientReadableStream<GrantEvent>;
  readonly #buffered: GrantEvent[] = [];
  #waiting: ((e: GrantEvent | Error) => void) | undefined;
  #ended: Error | undefined;

  constructor(stream: grpc.ClientReadableStream<GrantEvent>) {
    this.stream = stream;
    stream.on("data", (e: GrantEvent) => this.#push(e));
    stream.on("error", (err: Error) => this.#end(err));
    stream.on("end", () => this.#end(new Error("the watch ended")));
  }

  /** The next event, or a rejection after `timeoutMs` or when the stream ends. */
  next(timeoutMs = 5_000): Promise<GrantEvent> {
    const ready = this.#buffered.shift();
    if (ready) return Promise.resolve(ready);
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = undefined;
        reject(new Error(`no grant event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting = (e) => {
        clearTimeout(timer);
        this.#waiting = undefined;
        if (e instanceof Error) reject(e);
        else resolve(e);
      };
    });
  }

  async take(n: number, timeoutMs = 5_000): Promise<GrantEvent[]> {
    const events: GrantEvent[] = [];
    while (events.length < n) events.push(await this.next(timeoutMs));
    return events;
  }

  /** Events that arrived but were not read yet. */
  get unread(): readonly GrantEvent[] {
    return this.#buffered;
  }

  close(): void {
    this.stream.cancel();
  }

  #push(e: GrantEvent): void {
    if (this.#waiting) this.#waiting(e);
    else this.#buffered.push(e);
  }

  #end(err: Error): void {
    this.#ended ??= err;
    this.#waiting?.(err);
  }
}

/**
 * A grant-event seq to pass as `after_seq`: every event committed after this returns comes after it.
 * WatchGrants sends nothing (not even headers) before its first event, so a client cannot tell when a watch
 * opened with after_seq 0 ("the next event") is live; a watch that resumes from a known seq has no such gap.
 * Found by watching all grants and making auto-approved probe grants until the watch delivers one.
 */
export async function resumePoint(address: string, dataDir: string): Promise<string> {
  const client = api(address);
  const watch = client.as(await tokenFor(dataDir, "resume-point-watcher", ["jitgate-auditors"])).watch({});
  try {
    for (let i = 0; i < 20; i++) {
      const prober = client.as(await tokenFor(dataDir, `probe-${randomUUID()}`, ["analytics"]));
      await prober.call("RequestAccess", {
        resource: "s3/analytics-exports",
        actions: ["read"],
        duration: { seconds: 60 },
        justification: "probe grant for a resume point",
      });
      const seen = await watch.next(250).catch(() => undefined);
      if (seen) return seen.seq;
    }
    throw new Error("the grant watch never delivered a probe grant's event");
  } finally {
    watch.close();
    client.close();
  }
}

// ---- failures

export interface CallFailure {
  readonly code: grpc.status;
  readonly message: string;
  readonly details: WireErrorDetails | undefined;
}

/** The failure of a call that must fail; throws if it succeeded. */
export async function failureOf(call: Promise<unknown>): Promise<CallFailure> {
  try {
    await call;
  } catch (err) {
    const e = err as grpc.ServiceError;
    if (typeof e.code !== "number") throw err;
    return { code: e.code, message: e.details, details: errorDetailsOf(e) };
  }
  throw new Error("the call succeeded but was expected to fail");
}

/** `failureOf`, asserting its status code (the message says what came back instead). */
export async function failsWith(code: grpc.status, call: Promise<unknown>): Promise<CallFailure> {
  const failure = await failureOf(call);
  if (failure.code !== code) {
    throw new Error(`expected ${grpc.status[code]}, got ${grpc.status[failure.code]}: ${failure.message}`);
  }
  return failure;
}

/** Milliseconds since the epoch of a wire Timestamp. */
export function ms(t: Timestamp | null | undefined): number {
  if (!t) throw new Error("timestamp is not set");
  return Number(t.seconds) * 1000 + Math.floor(t.nanos / 1_000_000);
}

export const reasonCodes = (reasons: readonly Reason[] | undefined): string[] => (reasons ?? []).map((r) => r.code);

export { status } from "@grpc/grpc-js";
