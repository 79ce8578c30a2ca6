// The behaviour every AccessStore backend must show, as one suite: sqlite.test.ts runs it on SQLite files, and a
// PostgreSQL backend later runs the same. `open` returns a fresh, empty store each time it is called.
import { describe } from "node:test";
import type { SqliteStore } from "../../src/store/sqlite.ts";
import { grantContract } from "./contract-grants.ts";
import { requestContract } from "./contract-requests.ts";

/** The store as the suite drives it: the port's reads and `write`, plus the synchronous writes it is built from. */
export type ContractStore = SqliteStore;

export function accessStoreContract(backend: string, open: () => ContractStore): void {
  describe(`AccessStore contract (${backend})`, () => {
    requestContract(open);
    grantContract(open);
  });
}
