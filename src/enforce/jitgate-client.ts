// The three jitgate calls the enforcer makes (GetJwks, WatchRevocations, Check), typed and narrowed at the
// edge: everything else in src/enforce sees plain values, never proto-loader's wire objects.
import * as grpc from "@grpc/grpc-js";
import { accessServiceDefinition, loadAccessPackage } from "../proto/loader.ts";

/** Where jitgate listens and how to reach it. */
export interface JitgateEndpoint {
  /** host:port of jitgate's gRPC API. */
  readonly address: string;
  /** Channel credentials (TLS in production; `grpc.credentials.createInsecure()` on loopback only). */
  readonly credentials: grpc.ChannelCredentials;
  readonly channelOptions?: grpc.ChannelOptions;
}

/** A revocation as the enforcer keeps it. Times in ms since the Unix epoch. */
export interface Revocation {
  readonly seq: string;
  readonly grantId: string;
  readonly expiresAt: number;
}

/** jitgate's answer to a Check with a token. */
export interface CheckAnswer {
  readonly allow: boolean;
  readonly reasons: readonly string[];
  readonly grantId: string;
  /** When the grant that allowed the call expires (ms); undefined for standing access or a denial. */
  readonly grantExpiresAt: number | undefined;
}

export interface CheckQuery {
  readonly token: string;
  readonly resource: string;
  readonly action: string;
  readonly context?: Readonly<Record<string, string>>;
}

/** The caller's credentials for every call to jitgate (for example `authorization: Bearer <service token>`). */
export type CallMetadata = () => grpc.Metadata;

/** A revocation subscription: `cancel` ends it; the callbacks fire at most once each for `subscribed`/`ended`. */
export interface RevocationStream {
  cancel(): void;
}

export interface RevocationHandlers {
  subscribed(): void;
  revoked(r: Revocation): void;
  ended(err: Error): void;
}

type Callback = (err: grpc.ServiceError | null, res: unknown) => void;
type UnaryFn = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback) => grpc.ClientUnaryCall;
type StreamFn = (req: object, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;
type AccessClient = grpc.Client & { GetJwks: UnaryFn; Check: UnaryFn; WatchRevocations: StreamFn };

/** A small client of jitgate's AccessService with the enforcer's three calls. */
export class JitgateClient {
  readonly #client: AccessClient;
  readonly #metadata: CallMetadata;

  constructor(endpoint: JitgateEndpoint, metadata: CallMetadata) {
    const Client = grpc.makeGenericClientConstructor(accessServiceDefinition(loadAccessPackage()), "AccessService");
    this.#client = new Client(endpoint.address, endpoint.credentials, endpoint.channelOptions) as unknown as AccessClient;
    this.#metadata = metadata;
  }

  /** The published JWKS, parsed (not yet checked: `accessTokenKeySet` does that). */
  async jwks(deadline: number): Promise<unknown> {
    const res = await this.#unary("GetJwks", {}, deadline);
    const json = (res as { jwks_json?: unknown }).jwks_json;
    if (typeof json !== "string") throw new Error("GetJwks answered without jwks_json");
    return JSON.parse(json) as unknown;
  }

  /** Asks jitgate whether the token's holder may perform `action` on `resource` now. */
  async check(query: CheckQuery, deadline: grpc.Deadline): Promise<CheckAnswer> {
    const res = (await this.#unary("Check", { ...query, context: query.context ?? {} }, deadline)) as Record<string, unknown>;
    const reasons = Array.isArray(res.reasons) ? res.reasons.map((r) => String((r as { message?: unknown }).message ?? "")) : [];
    const grantId = typeof res.grant_id === "string" ? res.grant_id : "";
    return { allow: res.allow === true, reasons, grantId, grantExpiresAt: timestampMs(res.grant_expire_time) };
  }

  /** Follows WatchRevocations after `afterSeq` ("0" for the next one); see {@link RevocationHandlers}. */
  watchRevocations(afterSeq: string, on: RevocationHandlers): RevocationStream {
    // From the start ("0"), also the revocations made before: a token of a grant revoked while this service was
    // not listening must be refused too (and "0" after a reconnect that had seen nothing yet closes the gap).
    const stream = this.#client.WatchRevocations({ after_seq: afterSeq, include_in_force: afterSeq === "0" }, this.#metadata(), {});
    let ended = false;
    const end = (err: Error) => {
      if (ended) return;
      ended = true;
      on.ended(err);
    };
    stream.once("metadata", () => on.subscribed());
    stream.on("data", (e: unknown) => {
      const r = revocationOf(e);
      if (r) on.revoked(r);
    });
    stream.on("error", (err: Error) => end(err));
    stream.on("end", () => end(new Error("the revocation stream ended")));
    return { cancel: () => stream.cancel() };
  }

  close(): void {
    this.#client.close();
  }

  #unary(method: "GetJwks" | "Check", req: object, deadline: grpc.Deadline): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#client[method](req, this.#metadata(), { deadline }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }
}

function revocationOf(wire: unknown): Revocation | undefined {
  const e = wire as { seq?: unknown; grant_id?: unknown; expire_time?: unknown };
  if (typeof e.seq !== "string" || typeof e.grant_id !== "string" || e.grant_id === "") return undefined;
  // Without an expiry the revocation is kept for the longest token lifetime.
  return { seq: e.seq, grantId: e.grant_id, expiresAt: timestampMs(e.expire_time) ?? Number.POSITIVE_INFINITY };
}

function timestampMs(wire: unknown): number | undefined {
  const t = wire as { seconds?: unknown; nanos?: unknown } | null | undefined;
  if (!t || (typeof t.seconds !== "string" && typeof t.seconds !== "number")) return undefined;
  const ms = Number(t.seconds) * 1000 + Math.floor(Number(t.nanos ?? 0) / 1_000_000);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}
