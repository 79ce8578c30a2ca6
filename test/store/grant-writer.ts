// A separate jitgate-like process for the multi-process tests: stores grants in a loop on one SQLite file and
// prints each grant id only after its transaction committed.
// Usage: node grant-writer.ts <db file> <subject> <count, 0 = until killed> [--record-expiries]
import { writeSync } from "node:fs";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { MINUTE, storeGrant, T0 } from "./fixtures.ts";

const [file, subject, countArg, flag] = process.argv.slice(2);
if (file === undefined || subject === undefined || countArg === undefined) {
  console.error("usage: grant-writer.ts <db file> <subject> <count> [--record-expiries]");
  process.exit(2);
}
const count = Number(countArg);
const store = openSqliteStore(file);
for (let i = 0; count === 0 || i < count; i++) {
  const id = `${subject}-${i}`;
  storeGrant(store, { id, subject, expiresAt: T0 + MINUTE + i });
  // Synchronous, so the line leaves the process only after the commit above returned.
  writeSync(1, `${id}\n`);
  // Every grant has expired by then: the processes race to record the same expiries.
  if (flag === "--record-expiries") store.recordExpiries(T0 + 60 * MINUTE);
}
store.close();
