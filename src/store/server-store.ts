// The store a server runs on, as `--store` says: the SQLite file in the data directory (reads on the serving
// thread, writes on a writer thread, the live-grant index pulled from it), or a PostgreSQL database shared by
// replicas (pools for reads and writes, the index fed by the grant feed's own connection).
import { join } from "node:path";
import { FedLiveGrantIndex } from "../access/fed-live-grants.ts";
import { LiveGrantIndex, type LiveGrants } from "../access/live-grants.ts";
import type { AccessStore, Awaitable, Clock } from "../access/ports.ts";
import type { StoreConfig } from "../config.ts";
import { PgErrors, storeLocation } from "./postgres/errors.ts";
import { PgGrantFeed } from "./postgres/feed.ts";
import { openPgStore } from "./postgres/store.ts";
import type { WriteHealth } from "./sqlite-errors.ts";
import { openServerStore, SERVER_BUSY_TIMEOUT_MS, STORE_FILE } from "./sqlite.ts";

export interface ServerStore extends AccessStore {
  checkWrites(): Promise<WriteHealth>;
  activeGrantCount(now: number): Awaitable<number>;
  auditHead(): Awaitable<{ seq: number; hash: string } | undefined>;
}

/** The grant feed's state on a shared store: how long since it was last read, against its bound. */
export interface FeedHealth {
  readonly fresh: boolean;
  readonly staleForMs: number;
  readonly boundMs: number;
}

export interface OpenedServerStore {
  readonly store: ServerStore;
  readonly liveGrants: LiveGrants;
  /** For logs: the kind and place, never a password. */
  readonly location: string;
  /** Runs `listener` when the store announces commits of other processes (PostgreSQL); SQLite's feed polls instead. */
  onAnnounce(listener: () => void): void;
  /** The grant feed's health (PostgreSQL); undefined for SQLite, whose index reads the store itself. */
  feed(): FeedHealth | undefined;
  close(): Promise<void>;
}

export interface ServerStoreOptions {
  readonly dataDir: string;
  readonly clock: Clock;
  readonly onFeedError?: (err: unknown) => void;
  readonly onFeedFreshness?: (fresh: boolean) => void;
}

export async function openStoreForServer(config: StoreConfig, opts: ServerStoreOptions): Promise<OpenedServerStore> {
  const now = () => opts.clock.now();
  if (config.kind === "sqlite") {
    const file = join(opts.dataDir, STORE_FILE);
    // Reads here; writes (their lock waits and fsyncs) on the store's own writer thread.
    const store = await openServerStore(file, { now, busyTimeoutMs: SERVER_BUSY_TIMEOUT_MS });
    return {
      store,
      // Loaded once here, then kept exact against the store before every read (see live-grants.ts).
      liveGrants: new LiveGrantIndex(store, now()),
      location: `SQLite ${file}`,
      onAnnounce: () => {},
      feed: () => undefined,
      close: async () => store.close(),
    };
  }
  const location = storeLocation(config.url);
  const store = await openPgStore(config.url, { now });
  const source = new PgGrantFeed({
    url: config.url,
    errors: new PgErrors(location),
    readTimeoutMs: Math.max(100, Math.floor(config.feedBoundMs / 2)),
    onError: opts.onFeedError,
  });
  let index: FedLiveGrantIndex;
  try {
    index = await FedLiveGrantIndex.open(source, {
      boundMs: config.feedBoundMs,
      heartbeatMs: Math.max(25, Math.min(250, Math.floor(config.feedBoundMs / 8))),
      now,
      onError: opts.onFeedError,
      onFreshness: opts.onFeedFreshness,
    });
  } catch (err) {
    await source.close();
    await store.close();
    throw err;
  }
  return {
    store,
    liveGrants: index,
    location: `PostgreSQL ${location}`,
    onAnnounce: (listener) => source.onAnnounce(listener),
    feed: () => ({ fresh: index.fresh, staleForMs: Math.round(index.staleForMs), boundMs: config.feedBoundMs }),
    close: async () => {
      await index.close();
      await store.close();
    },
  };
}
