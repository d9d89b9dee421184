// Helpers of the collaboration end-to-end suite: start/stop a real `flux serve collab`, mint tokens,
// open y-websocket providers (BroadcastChannel off, so every byte goes through the server).

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, "..", "..");
export const FLUX_BIN = process.env.FLUX_BIN || path.join(REPO_ROOT, "target", "debug", "flux");
export const SECRET = "e2e-collab-secret-0123456789-abcdefghij";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function waitFor(predicate, { timeout = 5000, interval = 20, message = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await predicate();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${message} (last: ${JSON.stringify(last)})`);
    }
    await sleep(interval);
  }
}

const b64url = (v) => Buffer.from(v).toString("base64url");

/** An HS256 access token with flux's legacy claim set. */
export function token(
  id = randomUUID(),
  { secret = SECRET, email = `${id}@example.com`, userType = "designer", type = "access" } = {},
) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ id, email, userType, type, iat: now, exp: now + 900 }));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

export function getJson(url, { bearer } = {}) {
  return new Promise((resolve, reject) => {
    const headers = bearer ? { Authorization: `Bearer ${bearer}` } : {};
    const req = http.get(url, { timeout: 3000, headers }, (res) => {
      let data = "";
      res.on("data", (c) => (data += c));
      res.on("end", () => {
        try {
          resolve({ status: res.statusCode, body: data ? JSON.parse(data) : null, text: data });
        } catch {
          resolve({ status: res.statusCode, body: null, text: data });
        }
      });
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
}

/**
 * Start `flux serve collab` on a free port. `databaseUrl` defaults to a fresh SQLite file in a
 * temp dir; pass `dir` to reuse one (restart tests).
 */
export async function startCollab({ dir, databaseUrl, env = {} } = {}) {
  dir = dir || mkdtempSync(path.join(tmpdir(), "flux-collab-e2e-"));
  databaseUrl = databaseUrl || `sqlite://${dir}/flux.db`;
  const port = await freePort();
  const proc = spawn(FLUX_BIN, ["serve", "collab"], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      COLLAB_PORT: String(port),
      JWT_SECRET: SECRET,
      DATABASE_URL: databaseUrl,
      FLUX__DATA_DIR: dir,
      FLUX__SERVER__HOST: "127.0.0.1",
      FLUX__DATABASE__MIGRATE_ON_START: "always",
      FLUX__COLLAB__BATCH_INTERVAL_MS: "100",
      RUST_LOG: process.env.RUST_LOG || "warn",
      ...env,
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  const base = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await getJson(`${base}/health/ready`)).status === 200, {
    timeout: 20_000,
    message: "flux serve collab ready",
  });
  return {
    port,
    dir,
    databaseUrl,
    base,
    ws: `ws://127.0.0.1:${port}`,
    proc,
    exited,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A provider on `room` with its own doc; resolves once synced. */
export async function provider(server, room, { tok = token(), doc = new Y.Doc(), params = {}, sync = true } = {}) {
  const p = new WebsocketProvider(server.ws, room, doc, {
    WebSocketPolyfill: WebSocket,
    disableBc: true,
    params: tok === null ? params : { token: tok, ...params },
  });
  if (sync) {
    await waitFor(() => p.synced, { timeout: 10_000, message: `provider on ${room} synced` });
  }
  return { p, doc };
}

export function destroy(...items) {
  for (const it of items) {
    it.p.destroy();
    it.doc.destroy();
  }
}

/**
 * An admin of `server`'s database, made by `flux user create-admin` as an operator would, and an
 * access token of it.
 */
export function adminToken(server, email = `admin-${randomUUID().slice(0, 8)}@example.com`) {
  const out = execFileSync(FLUX_BIN, ["user", "create-admin", "--email", email], {
    cwd: server.dir,
    input: "Admin-passw0rd!\n",
    encoding: "utf8",
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: server.databaseUrl,
      JWT_SECRET: SECRET,
      FLUX__DATA_DIR: server.dir,
      RUST_LOG: "warn",
    },
  });
  const id = /\(([^)]+)\)/.exec(out)?.[1];
  assert.ok(id, `create-admin said: ${out}`);
  return token(id, { email, userType: "admin" });
}

/** Run SQL against the server's database (sqlite3 or psql CLI). */
export function sql(server, statement) {
  if (server.databaseUrl.startsWith("sqlite://")) {
    const file = server.databaseUrl.slice("sqlite://".length);
    return execFileSync("sqlite3", [file, statement], { encoding: "utf8" });
  }
  return execFileSync("psql", [server.databaseUrl, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", statement], {
    encoding: "utf8",
  });
}

/** A fresh PostgreSQL database when FLUX_TEST_DATABASE_URL names a server, else null. */
export function freshPostgres() {
  const admin = process.env.FLUX_TEST_DATABASE_URL;
  if (!admin) return null;
  const name = `flux_collab_e2e_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  execFileSync("psql", [admin, "-qAt", "-c", `CREATE DATABASE ${name}`]);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop() {
      try {
        execFileSync("psql", [admin, "-qAt", "-c", `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`]);
      } catch {
        /* best effort */
      }
    },
  };
}

/** Open a raw WebSocket; resolves when open (or with the close event if refused right away). */
export function rawSocket(url, opts = {}) {
  const ws = new WebSocket(url, opts);
  const closed = new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  const messages = [];
  ws.on("message", (data, isBinary) => messages.push(isBinary ? new Uint8Array(data) : data.toString()));
  const opened = new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return { ws, closed, opened, messages };
}

export { Y };

/**
 * A client of the original collaboration service (server-collaboration.js at 1ef9d91): a raw `ws`
 * socket speaking its JSON text frames, byte arrays as JSON arrays of numbers. It sends what its
 * document changes as `sync-update` as soon as the socket is open, applies every `sync-update` and
 * `sync-state` it receives, and records `presence` frames. It sends nothing else unless asked to
 * (`requestOnInit`: answer `sync-init` with `sync-request`, as the original's test client did).
 */
export async function jsonPeer(server, room, { tok = token(), requestOnInit = false } = {}) {
  const doc = new Y.Doc();
  const sock = rawSocket(`${server.ws}/${room}?token=${tok}`);
  const peer = { ws: sock.ws, doc, closed: sock.closed, inits: 0, updates: 0, presence: [], binary: 0, errors: [] };
  // Kept for the diagnosis of a failed wait: a peer the server closed never converges.
  sock.closed.then(({ code, reason }) => {
    peer.closedWith = `${code} ${reason}`;
  });
  sock.ws.on("message", (data, isBinary) => {
    if (isBinary) {
      peer.binary += 1;
      return;
    }
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch (e) {
      peer.errors.push(e.message);
      return;
    }
    if (msg.type === "sync-init") {
      peer.inits += 1;
      if (requestOnInit) sock.ws.send(JSON.stringify({ type: "sync-request" }));
    } else if (msg.type === "sync-update") {
      peer.updates += 1;
      Y.applyUpdate(doc, Uint8Array.from(msg.update), "server");
    } else if (msg.type === "sync-state") {
      Y.applyUpdate(doc, Uint8Array.from(msg.state), "server");
    } else if (msg.type === "presence") {
      peer.presence.push(msg);
    }
  });
  doc.on("update", (update, origin) => {
    if (origin !== "server") sock.ws.send(JSON.stringify({ type: "sync-update", update: Array.from(update) }));
  });
  await sock.opened;
  peer.close = () => {
    sock.ws.close();
    doc.destroy();
  };
  return peer;
}
