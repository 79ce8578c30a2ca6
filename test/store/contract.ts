// The behaviour every AccessStore backend must show, as one suite: sqlite.test.ts runs it on SQLite, and the
// PostgreSQL backend runs the same. `open` resolves to a fresh, empty store each time it is called.
import { describe } from "node:test";
import type { AccessStore } from "../../src/access/ports.ts";
import { grantContract } from "./contract-grants.ts";
import { requestContract } from "./contract-requests.ts";

/**
 * The store as the suite drives it: the port alone (reads awaited, every write through `write`), plus `close`,
 * which an embedded store may do at once and a networked one later.
 */
export interface ContractStore extends AccessStore {
  close(): void | Promise<void>;
}

export function accessStoreContract(backend: string, open: () => Promise<ContractStore>): void {
  describe(`AccessStore contract (${backend})`, () => {
    requestContract(open);
    grantContract(open);
  });
}
