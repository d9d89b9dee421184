// Helpers for the scale-out end-to-end tests: several real flux processes sharing one database and
// one Redis, a private redis-server that a test may stop and restart, and SQL seeding that works on
// the shared database (psql on PostgreSQL, sqlite3 on a shared SQLite file).

import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

import { FLUX_BIN, freePort, httpRequest, mintAccessToken, sleep, waitFor, withTimeout } from "./helpers.js";

// Shared state (rate-limit windows, presence) lives under this prefix, so runs on a shared Redis never
// see each other's counters (a 15-minute auth window outlives a test run).
const KEY_PREFIX = `flux-e2e-${process.pid}-${Date.now()}:`;

const ts = () => new Date().toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
const q = (s) => `'${String(s).replaceAll("'", "''")}'`;

/** Why the cluster suite cannot run here, or null. CI exports both variables (see .ci/run). */
export function clusterSkipReason() {
  if (!process.env.FLUX_TEST_REDIS_URL) return "FLUX_TEST_REDIS_URL is not set (a Redis >= 7 for the scale-out tests)";
  if (spawnSync("redis-server", ["--version"]).status !== 0) return "redis-server is not installed";
  return null;
}

function tcpOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** A redis-server of our own on a free port, which the test may stop and start again. */
export async function privateRedis() {
  const port = await freePort();
  let proc = null;
  const r = {
    port,
    url: `redis://127.0.0.1:${port}/?protocol=resp3`,
    async start() {
      proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
        stdio: "ignore",
      });
      await waitFor(() => tcpOpen(port), { timeout: 5000, message: `redis-server on ${port}` });
    },
    async stop() {
      if (!proc) return;
      const exited = new Promise((resolve) => proc.once("exit", resolve));
      proc.kill("SIGKILL");
      await withTimeout(exited, 5000, "redis-server to exit");
      proc = null;
    },
  };
  await r.start();
  return r;
}

/**
 * One database for every instance of a cluster: a fresh PostgreSQL database when
 * FLUX_TEST_DATABASE_URL is set (dropped by `drop()`), else a SQLite file in a temp dir.
 */
export function sharedDatabase() {
  const base = process.env.FLUX_TEST_DATABASE_URL;
  if (base) {
    const name = `flux_e2e_cluster_${process.pid}_${Date.now()}`;
    const admin = new URL(base);
    const psqlArgs = ["-h", admin.hostname, "-p", admin.port || "5432", "-U", admin.username || "postgres", "-v", "ON_ERROR_STOP=1"];
    execFileSync("psql", [...psqlArgs, "-d", admin.pathname.slice(1) || "postgres", "-c", `CREATE DATABASE ${name}`]);
    const url = new URL(base);
    url.pathname = `/${name}`;
    return {
      kind: "postgres",
      url: url.toString(),
      sql: (statements) => execFileSync("psql", [...psqlArgs, "-q", "-d", name, "-c", statements]),
      drop: () => {
        try {
          execFileSync("psql", [...psqlArgs, "-d", admin.pathname.slice(1) || "postgres", "-c", `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`]);
        } catch {
          /* best effort */
        }
      },
    };
  }
  const dir = mkdtempSync(path.join(tmpdir(), "flux-cluster-db-"));
  const file = path.join(dir, "flux.db");
  return {
    kind: "sqlite",
    url: `sqlite://${file}`,
    sql: (statements) => execFileSync("sqlite3", ["-cmd", ".timeout 5000", file, statements]),
    drop: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** `flux migrate run` on the shared database, as a deployment does before starting instances. */
export function migrate(db, secret) {
  execFileSync(FLUX_BIN, ["migrate", "run"], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: db.url, JWT_SECRET: secret, RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/**
 * Start one `flux serve <target>` and wait for /health/ready == 200 (unless `ready` is false).
 * In a cluster, pass the shared `db` (from sharedDatabase()) and `redisUrl`; without `db` the server
 * gets a SQLite file of its own in its data dir (`<dataDir>/flux.db`).
 */
export async function startInstance({ target = "unified", db, redisUrl, secret, env = {}, ready = true }) {
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), "flux-cluster-"));
  const output = [];
  const portEnv = target === "messaging" ? { MESSAGING_PORT: String(port) } : { PORT: String(port) };
  const proc = spawn(FLUX_BIN, ["serve", target], {
    cwd: dataDir,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...portEnv,
      JWT_SECRET: secret,
      DATABASE_URL: db ? db.url : `sqlite://${dataDir}/flux.db`,
      FLUX__DATA_DIR: dataDir,
      FLUX__SERVER__HOST: "127.0.0.1",
      ...(redisUrl
        ? {
            REDIS_URL: redisUrl,
            // No proxy in front: the client address is the peer address.
            FLUX__SERVER__TRUSTED_PROXIES: "0",
            FLUX__REDIS__KEY_PREFIX: KEY_PREFIX,
          }
        : {}),
      RUST_LOG: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  proc.stdout.on("data", (d) => output.push(d.toString()));
  proc.stderr.on("data", (d) => output.push(d.toString()));
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  const logs = () => output.join("");
  if (ready) {
    try {
      await waitFor(async () => (await httpRequest(`${url}/health/ready`, { timeout: 2000 })).status === 200, {
        timeout: 30_000,
        interval: 100,
        message: () => `${url}/health/ready (server output: ${logs()})`,
      });
    } catch (e) {
      proc.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
      throw e;
    }
  }
  async function stop() {
    proc.kill("SIGTERM");
    const info = await withTimeout(exited, 10_000, "flux to exit").catch((e) => {
      proc.kill("SIGKILL");
      throw e;
    });
    rmSync(dataDir, { recursive: true, force: true });
    return info;
  }
  return { url, port, dataDir, secret, proc, logs, stop, exited };
}

/** `/health/ready` body. */
export async function readiness(instance) {
  const res = await httpRequest(`${instance.url}/health/ready`, { timeout: 3000 });
  return { status: res.status, body: res.json };
}

/** Insert a user into the shared database; returns `{id, email, token}`. */
export function addUser(db, secret, id, { name = id, userType = "client" } = {}) {
  const email = `${id}@example.com`;
  const now = ts();
  db.sql(
    `INSERT INTO users (id, email, name, user_type, created_at, updated_at) VALUES (${q(id)}, ${q(email)}, ${q(name)}, ${q(userType)}, ${q(now)}, ${q(now)});`,
  );
  return { id, email, token: mintAccessToken(secret, { id, email, userType }) };
}

/** A team with the given members, in the shared database. */
export function addTeam(db, id, memberIds) {
  const now = ts();
  let s = `INSERT INTO groups (id, kind, name, created_at, updated_at) VALUES (${q(id)}, 'team', ${q(id)}, ${q(now)}, ${q(now)});`;
  for (const m of memberIds) {
    s += `INSERT INTO group_members (group_id, user_id, role, joined_at) VALUES (${q(id)}, ${q(m)}, 'member', ${q(now)});`;
  }
  db.sql(s);
}

export { sleep };
