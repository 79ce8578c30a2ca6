// Opens the decision log's writer beside the store the server runs on: decisions.db on a thread of its own for
// SQLite, or the decisions table of the replicas' shared database (on a small pool of its own) for PostgreSQL.
import { join } from "node:path";
import { DECISIONS_FILE } from "../store/decision-store.ts";
import { openPgDecisionStore } from "../store/postgres/decision-store.ts";
import type { DecisionWriter } from "./decision-log.ts";
import { startDecisionWriterThread } from "./writer-thread.ts";

/** The opened writer: what the DecisionLog writes through, and its release (idempotent; the log closes it, a shutdown step may again). */
export interface DecisionWriterHandle extends DecisionWriter {
  close(): Promise<void>;
}

/** The store kinds of the server's configuration (StoreConfig); a postgres store's URL may carry a password. */
export type DecisionStoreChoice = { readonly kind: "sqlite" } | { readonly kind: "postgres"; readonly url: string };

/**
 * Resolves once the writer can take batches: the decision schema is migrated (and a newer one refused) and, for
 * SQLite, the writer thread has opened `<dataDir>/decisions.db`. Fails as the store's opening fails.
 */
export async function openDecisionWriter(store: DecisionStoreChoice, dataDir: string): Promise<DecisionWriterHandle> {
  if (store.kind === "postgres") return openPgDecisionStore(store.url);
  return startDecisionWriterThread({ file: join(dataDir, DECISIONS_FILE) });
}
