// Shared helpers for the flux end-to-end suite: start/stop a real `flux serve unified`, pick a free
// port, mint HS256 access tokens, poll for conditions, and small promise utilities around sockets.

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, "..", "..");
export const FLUX_BIN = process.env.FLUX_BIN || path.join(REPO_ROOT, "target", "debug", "flux");
export const FIXTURES = path.join(HERE, "fixtures");

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port that was free a moment ago: bind port 0 on 127.0.0.1, read it, release it. */
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

/**
 * Poll `predicate` (sync or async) until it returns a truthy value, and return that value.
 * Rejects with `message` (a string, or a function called at timeout) and the last value/error seen after
 * `timeout` ms, so a test fails instead of hanging.
 */
export async function waitFor(predicate, { timeout = 5000, interval = 50, message = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await predicate();
      lastErr = undefined;
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const detail = lastErr ? `last error: ${lastErr.message}` : `last value: ${JSON.stringify(last)}`;
      const what = typeof message === "function" ? message() : message;
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (${detail})`);
    }
    await sleep(interval);
  }
}

/** Race a promise against a timer; the timer rejects with a descriptive error. */
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** Resolve with the first argument of the next `event` on `emitter`; reject after `ms`. */
export function nextEvent(emitter, event, ms = 5000) {
  return withTimeout(
    new Promise((resolve) => emitter.once(event, (first) => resolve(first))),
    ms,
    `event "${event}"`,
  );
}

// ---------------------------------------------------------------------------------------------
// Tokens

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** Sign an arbitrary header/payload pair as a compact JWS with HMAC-SHA256. */
export function signJwt(payload, secret, header = { alg: "HS256", typ: "JWT" }) {
  const head = b64url(JSON.stringify(header));
  const body = b64url(JSON.stringify(payload));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** An access token as flux issues them: `{id, email, userType, type:"access", iat, exp}`. */
export function mintAccessToken(secret, overrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  return signJwt(
    {
      id: "user-e2e-1",
      email: "e2e@example.com",
      userType: "client",
      type: "access",
      iat: now,
      exp: now + 900,
      ...overrides,
    },
    secret,
  );
}

// ---------------------------------------------------------------------------------------------
// HTTP

/**
 * A raw HTTP request through node:http (so forbidden-in-browsers headers like Origin are sent as given).
 * Resolves `{ status, headers, text, json }` (json is undefined if the body is not JSON).
 */
export function httpRequest(url, { method = "GET", headers = {}, body, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on("error", reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`HTTP ${method} ${url} timed out after ${timeout} ms`)));
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Server process

/** Wait until the binary exists and has not changed size for a short moment (it may be rebuilt under us). */
async function waitForBinary() {
  await waitFor(
    async () => {
      if (!existsSync(FLUX_BIN)) return false;
      const a = statSync(FLUX_BIN);
      await sleep(300);
      if (!existsSync(FLUX_BIN)) return false;
      const b = statSync(FLUX_BIN);
      return a.size === b.size && a.mtimeMs === b.mtimeMs && a.size > 0;
    },
    { timeout: 30_000, interval: 1000, message: `server binary at ${FLUX_BIN}` },
  );
}

/**
 * Start `flux serve unified` on a free port in a fresh temporary data dir and wait for `/health/ready`.
 * Returns a handle: { url, port, secret, proc, logs(), stop() }.
 */
export async function startServer({ env = {}, readyTimeout = 20_000, target = "unified" } = {}) {
  for (let attempt = 1; ; attempt++) {
    await waitForBinary();
    try {
      return await startOnce({ env, readyTimeout, target });
    } catch (e) {
      // ENOENT/ETXTBSY when the binary is swapped mid-spawn, or a port race: retry a couple of times.
      if (attempt >= 3 || !/ENOENT|ETXTBSY|EADDRINUSE|[Aa]ddress already in use/.test(String(e.message))) throw e;
      await sleep(2000);
    }
  }
}

async function startOnce({ env, readyTimeout, target }) {
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), "flux-e2e-"));
  const secret = `e2e-secret-${"x".repeat(24)}-${process.pid}`; // > 32 bytes
  const output = [];
  const proc = spawn(FLUX_BIN, ["serve", target], {
    cwd: dataDir,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: String(port),
      JWT_SECRET: secret,
      DATABASE_URL: `sqlite://${dataDir}/flux.db`,
      FLUX__DATA_DIR: dataDir,
      FLUX__SERVER__HOST: "127.0.0.1",
      RUST_LOG: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const spawnError = new Promise((_, reject) => proc.once("error", reject));
  spawnError.catch(() => {});
  proc.stdout.on("data", (d) => output.push(d.toString()));
  proc.stderr.on("data", (d) => output.push(d.toString()));
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  let exitInfo = null;
  exited.then((info) => (exitInfo = info));

  const url = `http://127.0.0.1:${port}`;
  const logs = () => output.join("");
  const exitedEarly = exited.then((info) => {
    throw new Error(`server exited before ready: ${JSON.stringify(info)}\n--- server output ---\n${logs()}`);
  });
  exitedEarly.catch(() => {});
  try {
    await Promise.race([
      spawnError,
      exitedEarly,
      waitFor(
        async () => (await httpRequest(`${url}/health/ready`, { timeout: 2000 })).status === 200,
        { timeout: readyTimeout, interval: 100, message: `${url}/health/ready == 200` },
      ),
    ]);
  } catch (e) {
    proc.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
    throw String(e.message).includes("--- server output ---")
      ? e
      : new Error(`${e.message}\n--- server output ---\n${logs()}`);
  }

  /**
   * SIGTERM the server and resolve `{ code, signal, ms }` once it exits. Rejects (after SIGKILLing it)
   * if it is still running after `timeout` ms.
   */
  async function stop(timeout = 10_000) {
    const t0 = Date.now();
    if (!exitInfo) proc.kill("SIGTERM");
    try {
      const info = await withTimeout(exited, timeout, `flux to exit after SIGTERM`);
      return { ...info, ms: Date.now() - t0 };
    } catch (e) {
      proc.kill("SIGKILL");
      throw new Error(`${e.message}\n--- server output ---\n${logs()}`);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }

  return { url, port, secret, proc, dataDir, logs, stop, exited };
}

/** `/services` → the number of sockets on a namespace. */
export async function socketCount(url, ns = "/messaging") {
  const res = await httpRequest(`${url}/services`);
  if (res.status !== 200 || !res.json) throw new Error(`/services answered ${res.status}: ${res.text}`);
  const entry = res.json.socketio?.namespaces?.[ns];
  if (!entry || typeof entry.sockets !== "number") throw new Error(`/services has no socket count for ${ns}: ${res.text}`);
  return entry.sockets;
}
