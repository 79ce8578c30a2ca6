// The grant feed of one replica: a connection of its own that LISTENs on the grant-events channel and reads the
// events by seq. Its liveness is the feed's: when it breaks (PostgreSQL restarts, the network drops, a read goes
// unanswered past its limit) it is closed and opened again with backoff, and every reconnect is announced so the
// index reads what it missed by seq. Nothing here decides freshness: the index does (fed-live-grants.ts).
import { Client } from "pg";
import type { Grant, GrantEvent } from "../../access/model.ts";
import type { GrantFeedSource } from "../../access/fed-live-grants.ts";
import type { PgErrors } from "./errors.ts";
import { connectionConfig } from "./pool.ts";
import { grantEventOf, grantOf, type PgGrantEventRow, type PgGrantRow } from "./rows.ts";
import { GRANT_EVENTS_CHANNEL, SQL } from "./statements.ts";

export interface PgGrantFeedOptions {
  readonly url: string;
  readonly errors: PgErrors;
  /** How long a connect or one read may take before the connection counts as broken (ms). */
  readonly readTimeoutMs: number;
  /** Told of each connection failure (the feed reconnects by itself). */
  readonly onError?: (err: unknown) => void;
}

const MAX_BACKOFF_MS = 1_000;

export class PgGrantFeed implements GrantFeedSource {
  readonly #opts: PgGrantFeedOptions;
  readonly #listeners = new Set<() => void>();
  #client: Promise<Client> | undefined;
  #backoffMs = 0;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;

  constructor(opts: PgGrantFeedOptions) {
    this.#opts = opts;
  }

  onAnnounce(listener: () => void): void {
    this.#listeners.add(listener);
    void this.#connected().catch(() => undefined);
  }

  async liveGrantSnapshot(now: number): Promise<{ seq: number; grants: readonly Grant[] }> {
    return this.#withClient(async (client) => {
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      try {
        const [latest] = (await client.query<{ seq: number }>({ text: SQL.latestGrantEventSeq.text })).rows;
        const grants = (await client.query<PgGrantRow>({ text: SQL.allLiveGrants.text, values: [now] })).rows.map(grantOf);
        return { seq: latest?.seq ?? 0, grants };
      } finally {
        await client.query("COMMIT");
      }
    }, 0);
  }

  eventsAfter(after: number, limit: number): Promise<readonly GrantEvent[]> {
    return this.#withClient(
      async (client) =>
        (
          await client.query<PgGrantEventRow>({
            name: SQL.grantEventsAfter.name,
            text: SQL.grantEventsAfter.text,
            values: [after, limit],
          })
        ).rows.map(grantEventOf),
      this.#opts.readTimeoutMs,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    const client = this.#client;
    this.#client = undefined;
    if (client) await client.then((c) => c.end()).catch(() => undefined);
  }

  /** Runs `fn` on the feed's connection; a failure breaks the connection (reconnected with backoff) and throws. */
  async #withClient<T>(fn: (client: Client) => Promise<T>, timeoutMs: number): Promise<T> {
    const client = await this.#connected();
    let timer: NodeJS.Timeout | undefined;
    try {
      if (timeoutMs <= 0) return await fn(client);
      return await Promise.race([
        fn(client),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (err) {
      this.#broken(client, err);
      throw this.#opts.errors.of(err);
    } finally {
      clearTimeout(timer);
    }
  }

  #connected(): Promise<Client> {
    if (this.#closed) return Promise.reject(this.#opts.errors.of(new Error("the grant feed is closed")));
    this.#client ??= this.#connect();
    return this.#client;
  }

  async #connect(): Promise<Client> {
    const client = new Client({
      ...connectionConfig(this.#opts.url, this.#opts.readTimeoutMs),
      application_name: "jitgate-feed",
    });
    client.on("error", (err) => this.#broken(client, err));
    client.on("end", () => this.#broken(client, new Error("the connection ended")));
    client.on("notification", (message) => {
      if (message.channel === GRANT_EVENTS_CHANNEL) this.#announce();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${GRANT_EVENTS_CHANNEL}`);
    } catch (err) {
      this.#broken(client, err);
      throw this.#opts.errors.of(err);
    }
    this.#backoffMs = 0;
    // Whatever was committed while this replica was not listening is read now, by seq.
    queueMicrotask(() => this.#announce());
    return client;
  }

  /** Drops a broken connection once, and reconnects after a backoff (with jitter) when anyone listens. */
  #broken(client: Client, err: unknown): void {
    const current = this.#client;
    if (current === undefined) return;
    void current.then(
      (c) => {
        if (c === client) this.#reset(client, err);
      },
      () => this.#reset(client, err),
    );
  }

  #reset(client: Client, err: unknown): void {
    if (this.#client === undefined) return;
    this.#client = undefined;
    client.removeAllListeners("notification");
    void client.end().catch(() => undefined);
    if (this.#closed) return;
    this.#opts.onError?.(err);
    this.#backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(50, this.#backoffMs * 2));
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => void this.#connected().catch(() => undefined), this.#backoffMs * (0.5 + Math.random()));
    this.#retry.unref();
  }

  #announce(): void {
    for (const listener of this.#listeners) listener();
  }
}
