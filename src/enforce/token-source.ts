// For clients of a protected service: keeps a current jitgate access token for one grant and attaches it to
// every call. A token is fetched once and reused until shortly before it expires, then renewed (one fetch at
// a time, however many calls are waiting), so a long-running client never sends an expired token and never
// asks jitgate for one per call.
import * as grpc from "@grpc/grpc-js";
import { accessServiceDefinition, loadAccessPackage } from "../proto/loader.ts";

/** Where jitgate listens and how to reach it (TLS in production; insecure credentials on loopback only). */
export interface TokenSourceEndpoint {
  readonly address: string;
  readonly credentials: grpc.ChannelCredentials;
  readonly channelOptions?: grpc.ChannelOptions;
}

export interface TokenSourceOptions {
  /** jitgate, and the holder's credentials for calling it. */
  readonly jitgate: TokenSourceEndpoint;
  /** The holder's own credentials for jitgate (for example `authorization: Bearer <OIDC token>`). */
  readonly callMetadata: () => grpc.Metadata;
  /** The holder's active grant. */
  readonly grantId: string;
  /** Renew this long before the token expires. Default 30 s (or half the token's life, if shorter). */
  readonly renewBeforeMs?: number;
  /** ms since the epoch; for tests. */
  readonly now?: () => number;
}

interface Current {
  readonly token: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

type IssueFn = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

export class AccessTokenSource {
  readonly #opts: TokenSourceOptions;
  readonly #client: grpc.Client & { IssueToken: IssueFn };
  readonly #now: () => number;
  #current: Current | undefined;
  #renewing: Promise<Current> | undefined;

  constructor(opts: TokenSourceOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    const Client = grpc.makeGenericClientConstructor(accessServiceDefinition(loadAccessPackage()), "AccessService");
    this.#client = new Client(opts.jitgate.address, opts.jitgate.credentials, opts.jitgate.channelOptions) as never;
  }

  /** A token valid for at least the renewal margin (or the best jitgate can give near the grant's end). */
  async token(): Promise<string> {
    const current = this.#current;
    if (current && this.#now() < current.expiresAt - this.#margin(current)) return current.token;
    this.#renewing ??= this.#issue().finally(() => {
      this.#renewing = undefined;
    });
    return (await this.#renewing).token;
  }

  /** Call credentials for TLS channels: `grpc.credentials.combineChannelCredentials(tls, source.callCredentials())`. */
  callCredentials(): grpc.CallCredentials {
    return grpc.credentials.createFromMetadataGenerator((_params, done) => {
      this.token().then(
        (token) => done(null, bearer(token)),
        (err: Error) => done(err),
      );
    });
  }

  /** A client interceptor that adds the token to every call, for any channel (including loopback without TLS). */
  interceptor(): grpc.Interceptor {
    return (options, nextCall) =>
      new grpc.InterceptingCall(nextCall(options), {
        start: (metadata, listener, next) => {
          this.token().then(
            (token) => {
              metadata.set("authorization", `Bearer ${token}`);
              next(metadata, listener);
            },
            (err: grpc.ServiceError) =>
              listener.onReceiveStatus?.({
                code: err.code ?? grpc.status.UNAVAILABLE,
                details: `no access token: ${err.details ?? err.message}`,
                metadata: new grpc.Metadata(),
              }),
          );
        },
      });
  }

  close(): void {
    this.#client.close();
  }

  #margin(c: Current): number {
    return Math.min(this.#opts.renewBeforeMs ?? 30_000, (c.expiresAt - c.issuedAt) / 2);
  }

  #issue(): Promise<Current> {
    const issuedAt = this.#now();
    return new Promise((resolve, reject) =>
      this.#client.IssueToken(
        { grant_id: this.#opts.grantId },
        this.#opts.callMetadata(),
        { deadline: Date.now() + 10_000 },
        (err, res) => {
          if (err) return reject(err);
          const r = res as { token: string; expire_time: { seconds: string | number; nanos: number } };
          this.#current = { token: r.token, issuedAt, expiresAt: Number(r.expire_time.seconds) * 1000 };
          resolve(this.#current);
        },
      ),
    );
  }
}

function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}
