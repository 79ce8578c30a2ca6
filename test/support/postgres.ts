// A real PostgreSQL server for tests: initdb into a temporary directory and a postmaster on a free loopback
// port, one per test process, stopped when the process exits. Run as the `postgres` user when the tests run as
// root (PostgreSQL refuses root). The binaries come from scripts/ensure-postgres.sh (make test runs it first);
// a test never skips for want of them: it fails saying how to install them.
import { spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { ROOT } from "./bundles.ts";

export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  /** The superuser's URL for a database (default `postgres`). */
  url(database?: string): string;
  /** A new, empty database; its URL. */
  createDatabase(): Promise<string>;
  /** Stops the postmaster (fast shutdown: clients are disconnected); `start` brings it back on the same port and data. */
  stopServer(mode?: "fast" | "immediate"): void;
  start(): void;
  /** Stops it for good and removes its directory. */
  stop(): void;
}

const USER = "jitgate";
let binDir: string | undefined;

/** The PostgreSQL bin directory, from scripts/ensure-postgres.sh (which installs it when it can). */
export function postgresBin(): string {
  if (binDir !== undefined) return binDir;
  const out = spawnSync(join(ROOT, "scripts", "ensure-postgres.sh"), { encoding: "utf8" });
  if (out.status !== 0) throw new Error(`PostgreSQL is needed for this test and was not found:\n${out.stderr}`);
  binDir = out.stdout.trim();
  return binDir;
}

/** The `postgres` user Debian's package creates, from /etc/passwd. */
function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  const [, , uid, gid] = line?.split(":") ?? [];
  if (uid === undefined || gid === undefined)
    throw new Error(
      "PostgreSQL refuses to run as root and there is no postgres user: install Debian's postgresql package (scripts/ensure-postgres.sh)",
    );
  return { uid: Number(uid), gid: Number(gid) };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBin();
  const dir = mkdtempSync(join(tmpdir(), "jitgate-pg-"));
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { uid, gid } = postgresUser();
    chownSync(dir, uid, gid);
  }
  // As root, the programs run as the postgres user (spawned with its uid and gid: no runuser or su needed).
  const owner = asRoot ? postgresUser() : {};
  const run = (cmd: string, args: string[]) => {
    const out = spawnSync(join(bin, cmd), args, { encoding: "utf8", cwd: dir, ...owner });
    if (out.status !== 0) throw new Error(`${cmd} failed (${out.error?.message ?? `exit ${out.status}`}): ${out.stderr || out.stdout}`);
  };
  run("initdb", ["-D", data, "-U", USER, "--auth=trust", "-E", "UTF8", "--no-locale", "-N"]);
  let port = 0;
  const start = () => {
    run("pg_ctl", [
      "-D",
      data,
      "-l",
      join(dir, "server.log"),
      "-w",
      "-t",
      "30",
      "-o",
      `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c max_connections=200`,
      "start",
    ]);
  };
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      start();
      break;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
  let running = true;
  const stopServer = (mode: "fast" | "immediate" = "fast") => {
    if (!running) return;
    run("pg_ctl", ["-D", data, "-m", mode, "-w", "stop"]);
    running = false;
  };
  let gone = false;
  const stop = () => {
    if (gone) return;
    gone = true;
    try {
      stopServer("immediate");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  process.once("exit", stop);
  let databases = 0;
  const url = (database = "postgres") => `postgres://${USER}@127.0.0.1:${port}/${database}`;
  return {
    host: "127.0.0.1",
    port,
    url,
    async createDatabase() {
      const name = `t${process.pid}_${++databases}`;
      await withClient(url(), (client) => client.query(`CREATE DATABASE ${name}`));
      return url(name);
    },
    stopServer,
    start() {
      if (running || !existsSync(data)) return;
      start();
      running = true;
    },
    stop,
  };
}

/** Runs `fn` on a fresh connection to `url`, closed afterwards (for tests that look at PostgreSQL directly). */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
