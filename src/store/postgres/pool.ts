// The store's connection pools: jitgate's settings on every connection, its own type parsing (bigint as a JS
// number, per pool, never through pg's global `types`), and error listeners so that a connection PostgreSQL
// closes (a restart, an idle timeout) is dropped instead of crashing the process.
import { Client, Pool, types, type ClientConfig, type CustomTypesConfig, type PoolClient } from "pg";

/** PostgreSQL's type oids this store parses itself. */
const INT8_OID = 20;

/** Times (ms since the epoch), seqs and counts are bigint columns; every one of them fits a double exactly. */
export const STORE_TYPES: CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => {
    if (oid === INT8_OID && format !== "binary") return (text: string) => Number(text);
    return types.getTypeParser(oid, format as "text");
  }) as CustomTypesConfig["getTypeParser"],
};

export interface PoolSettings {
  readonly url: string;
  readonly max: number;
  readonly connectTimeoutMs: number;
  /** PostgreSQL's statement_timeout on every connection of the pool (0: none). */
  readonly statementTimeoutMs: number;
  /** node-postgres's own limit on waiting for an answer (0: none): a socket that went silent fails too. */
  readonly queryTimeoutMs: number;
  /** Told about errors of connections nobody is using (the pool has already dropped them). */
  readonly onIdleError: (err: Error) => void;
}

export function connectionConfig(url: string, connectTimeoutMs: number): ClientConfig {
  return {
    connectionString: url,
    application_name: "jitgate",
    connectionTimeoutMillis: connectTimeoutMs,
    keepAlive: true,
    types: STORE_TYPES,
  };
}

export function openPool(settings: PoolSettings): Pool {
  const pool = new Pool({
    ...connectionConfig(settings.url, settings.connectTimeoutMs),
    ...(settings.statementTimeoutMs > 0 ? { statement_timeout: settings.statementTimeoutMs } : {}),
    ...(settings.queryTimeoutMs > 0 ? { query_timeout: settings.queryTimeoutMs } : {}),
    max: settings.max,
    idleTimeoutMillis: 30_000,
  });
  pool.on("error", (err) => settings.onIdleError(err));
  return pool;
}

/** A single connection outside the pools (migrations), with the same settings; not yet connected. */
export function standaloneClient(url: string, connectTimeoutMs: number): Client {
  return new Client(connectionConfig(url, connectTimeoutMs));
}

/**
 * A client checked out of `pool` for several statements, and its release. While it is out, pg-pool listens for
 * nothing on it, and an 'error' event with no listener would crash the process: this listens, and the release
 * drops a connection that failed instead of handing it to the next caller.
 */
export async function checkout(pool: Pool): Promise<{ client: PoolClient; release: (broken?: boolean) => void }> {
  const client = await pool.connect();
  let failed = false;
  const onError = () => {
    failed = true;
  };
  client.on("error", onError);
  return {
    client,
    release: (broken = false) => {
      client.removeListener("error", onError);
      client.release(broken || failed);
    },
  };
}

/**
 * `pool.connect()` within `ms`: rejects with `timeout()`'s error past it, and a client that arrives later goes
 * back to the pool unused.
 */
export async function checkoutWithin(
  pool: Pool,
  ms: number,
  timeout: () => Error,
): Promise<{ client: PoolClient; release: (broken?: boolean) => void }> {
  const pending = checkout(pool);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeout()), Math.max(0, ms));
  });
  try {
    return await Promise.race([pending, late]);
  } catch (err) {
    pending.then(
      (c) => c.release(),
      () => undefined,
    );
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
