// The shared AccessStore contract on PostgreSQL: a real server (test/support/postgres.ts), a fresh database per test.
import { after } from "node:test";
import { openPgStore } from "../../src/store/postgres/store.ts";
import { startPostgres, type PostgresServer } from "../support/postgres.ts";
import { accessStoreContract } from "./contract.ts";

let server: Promise<PostgresServer> | undefined;
after(async () => (await server)?.stop());

accessStoreContract("PostgreSQL", async () => {
  server ??= startPostgres();
  return openPgStore(await (await server).createDatabase());
});
