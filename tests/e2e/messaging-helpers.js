// Helpers for the messaging end-to-end tests: seed users and teams straight into the server's SQLite
// file (the accounts routes are another module), open authenticated sockets, collect events.

import { execFileSync } from "node:child_process";
import path from "node:path";

import { io } from "socket.io-client";

import { startInstance } from "./cluster-helpers.js";
import { httpRequest, mintAccessToken, sleep, waitFor, withTimeout } from "./helpers.js";

export const STEP = 5000;

const ts = () => new Date().toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
const q = (s) => `'${String(s).replaceAll("'", "''")}'`;

/** Run SQL against the server's database (WAL: safe beside the running server). */
export function sql(server, statements) {
  execFileSync("sqlite3", ["-cmd", ".timeout 5000", path.join(server.dataDir, "flux.db"), statements]);
}

/** Insert a user and return `{id, email, token}` (an access token signed with the server's secret). */
export function addUser(server, id, { name = id, userType = "client" } = {}) {
  const email = `${id}@example.com`;
  const now = ts();
  sql(
    server,
    `INSERT INTO users (id, email, name, user_type, created_at, updated_at) VALUES (${q(id)}, ${q(email)}, ${q(name)}, ${q(userType)}, ${q(now)}, ${q(now)});`,
  );
  return { id, email, token: mintAccessToken(server.secret, { id, email, userType }) };
}

/** A team with the given members. */
export function addTeam(server, id, memberIds) {
  const now = ts();
  let s = `INSERT INTO groups (id, kind, name, created_at, updated_at) VALUES (${q(id)}, 'team', ${q(id)}, ${q(now)}, ${q(now)});`;
  for (const m of memberIds) {
    s += `INSERT INTO group_members (group_id, user_id, role, joined_at) VALUES (${q(id)}, ${q(m)}, 'member', ${q(now)});`;
  }
  sql(server, s);
}

export function removeTeamMember(server, teamId, userId) {
  sql(server, `DELETE FROM group_members WHERE group_id = ${q(teamId)} AND user_id = ${q(userId)};`);
}

/** JSON REST call with a bearer token. */
export async function api(server, method, route, token, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  return httpRequest(`${server.url}${route}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Create a team channel over REST as `user`; returns its id. */
export async function createChannel(server, user, teamId, name = "general") {
  const res = await api(server, "POST", "/api/channels", user.token, { name, teamId });
  if (res.status !== 200) throw new Error(`POST /api/channels → ${res.status} ${res.text}`);
  return res.json.id;
}

/**
 * An authenticated socket that records every event it receives: `c.events` is a list of
 * `[name, ...args]`; `c.next(name, pred)` waits for a matching one (including ones already seen
 * since the last `c.mark()`).
 */
export function client(url, user, { transports = ["websocket"], ns = "/messaging", ...opts } = {}) {
  const socket = io(`${url}${ns === "/" ? "" : ns}`, {
    reconnection: false,
    forceNew: true,
    timeout: STEP,
    transports,
    auth: user ? { token: user.token } : undefined,
    ...opts,
  });
  const events = [];
  socket.onAny((name, ...args) => events.push([name, ...args]));
  let from = 0;
  const c = {
    socket,
    events,
    mark() {
      from = events.length;
    },
    seen(name, pred = () => true) {
      return events.slice(from).filter(([n, ...a]) => n === name && pred(...a));
    },
    async next(name, pred = () => true, ms = STEP) {
      const hit = await waitFor(() => c.seen(name, pred)[0], {
        timeout: ms,
        interval: 10,
        message: () => `event "${name}" on ${user?.id ?? "anonymous"} (seen: ${JSON.stringify(events.slice(from).map((e) => e[0]))})`,
      });
      return hit[1];
    },
    /** Emit and wait for the `error` event that follows; returns its message. */
    async error(event, ...args) {
      c.mark();
      socket.emit(event, ...args);
      const e = await c.next("error");
      return e?.message;
    },
    emit(event, ...args) {
      socket.emit(event, ...args);
    },
    close() {
      socket.close();
    },
  };
  return c;
}

export function connected(c, ms = STEP) {
  if (c.socket.connected) return Promise.resolve(c);
  return withTimeout(
    new Promise((resolve, reject) => {
      c.socket.once("connect", () => resolve(c));
      c.socket.once("connect_error", reject);
    }),
    ms,
    "socket connect",
  );
}

/** Nothing named `name` arrives within `ms` (for "the stranger receives nothing" checks). */
export async function silent(c, name, ms = 400, pred = () => true) {
  await sleep(ms);
  return c.seen(name, pred).length === 0;
}

/**
 * Start `flux serve <target>` (unified or messaging) in a fresh data dir; ready when /health/ready is
 * 200. Returns `{url, dataDir, secret, logs(), stop()}`.
 */
export function startTarget(target, env = {}) {
  const secret = `msg-e2e-secret-${"y".repeat(24)}-${process.pid}`;
  return startInstance({ target, secret, env });
}
