// The CLI's connection to a jitgate server: address and credentials from flags or the environment, the
// caller's token attached to every call, unary calls as promises with retries where they are safe, and a
// failed TLS handshake reported as the certificate problem it is (UNAUTHENTICATED), not as an outage.
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { InvalidArgument, Unauthenticated } from "../errors.ts";
import { accessServiceDefinition, loadAccessPackage } from "../proto/loader.ts";
import { type Idempotence, tlsFailure, withRetry } from "./retry.ts";

export interface ConnectionFlags {
  address?: string;
  tokenFile?: string;
  ca?: string;
  cert?: string;
  key?: string;
  timeout?: string;
}

export const DEFAULT_ADDRESS = "127.0.0.1:7443";

/** Where `jitgate login` keeps the caller's token (mode 0600). */
export function tokenPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "jitgate", "token");
}

type Unary = (
  req: object,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res: unknown) => void,
) => grpc.ClientUnaryCall;
type Streaming = (req: object, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;

export class JitgateClient {
  readonly #client: grpc.Client & Record<string, Unary | Streaming>;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;

  constructor(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env) {
    const address = flags.address ?? env.JITGATE_ADDRESS ?? DEFAULT_ADDRESS;
    const Client = grpc.makeGenericClientConstructor(accessServiceDefinition(loadAccessPackage()), "AccessService");
    const clientCertificate = (flags.cert ?? env.JITGATE_CERT) !== undefined;
    this.#client = new Client(address, credentials(flags, env), {
      interceptors: [tlsFailureAsUnauthenticated(address, clientCertificate)],
    }) as never;
    this.#token =
      env.JITGATE_TOKEN ?? readToken(flags.tokenFile ?? env.JITGATE_TOKEN_FILE ?? tokenPath(env), flags.tokenFile !== undefined);
    const timeout = Number(flags.timeout ?? env.JITGATE_TIMEOUT ?? 30);
    if (!Number.isFinite(timeout) || timeout <= 0)
      throw new InvalidArgument("--timeout (JITGATE_TIMEOUT)", "must be a positive number of seconds");
    this.#timeoutMs = timeout * 1000;
  }

  metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.#token) md.set("authorization", `Bearer ${this.#token}`);
    return md;
  }

  /** A unary call; `timeoutMs` overrides the default deadline (for `request --wait`). */
  call<T>(method: string, request: object, idempotence: Idempotence, timeoutMs = this.#timeoutMs): Promise<T> {
    const fn = this.#client[method] as Unary;
    return withRetry(
      () =>
        new Promise<T>((resolve, reject) =>
          fn.call(this.#client, request, this.metadata(), { deadline: Date.now() + timeoutMs }, (err, res) =>
            err ? reject(err) : resolve(res as T),
          ),
        ),
      idempotence,
    );
  }

  stream(method: string, request: object): grpc.ClientReadableStream<unknown> {
    return (this.#client[method] as Streaming).call(this.#client, request, this.metadata(), {});
  }

  close(): void {
    this.#client.close();
  }
}

/**
 * grpc-js reports a failed TLS handshake as UNAVAILABLE, which reads (and would be retried) as a server outage.
 * This ends such a call, unary or streaming, as UNAUTHENTICATED naming the problem: exit code 5, no retry.
 */
function tlsFailureAsUnauthenticated(address: string, clientCertificate: boolean): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, _listener, next) {
        next(metadata, {
          onReceiveStatus(status, nextStatus) {
            const failure = tlsFailure(status, { clientCertificate });
            if (!failure) return nextStatus(status);
            nextStatus({
              ...status,
              code: grpc.status.UNAUTHENTICATED,
              details: `TLS handshake with ${address} failed (a certificate or TLS setting, not a server outage): ${failure.problem}: ${failure.detail}`,
            });
          },
        });
      },
    });
}

function credentials(flags: ConnectionFlags, env: NodeJS.ProcessEnv): grpc.ChannelCredentials {
  const ca = flags.ca ?? env.JITGATE_CA;
  const cert = flags.cert ?? env.JITGATE_CERT;
  const key = flags.key ?? env.JITGATE_KEY;
  if (!ca && !cert && !key) return grpc.credentials.createInsecure();
  if ((cert === undefined) !== (key === undefined))
    throw new InvalidArgument("--cert/--key", "give both a client certificate and its key, or neither");
  const read = (file: string | undefined, flag: string) => {
    if (!file) return null;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new InvalidArgument(flag, `cannot read ${file}: ${(err as Error).message}`);
    }
  };
  return grpc.credentials.createSsl(read(ca, "--ca (JITGATE_CA)"), read(key, "--key (JITGATE_KEY)"), read(cert, "--cert (JITGATE_CERT)"));
}

function readToken(file: string, explicit: boolean): string | undefined {
  try {
    return readFileSync(file, "utf8").trim() || undefined;
  } catch (err) {
    if (!explicit && (err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Unauthenticated(`cannot read the token file ${file}: ${(err as Error).message}`);
  }
}
