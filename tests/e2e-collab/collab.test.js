// flux serve collab against the real yjs + y-websocket WebsocketProvider (and raw ws for the legacy
// JSON protocol and garbage frames). Run: FLUX_BIN=/path/to/flux npm test

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import {
  adminToken,
  destroy,
  freshPostgres,
  getJson,
  jsonPeer,
  provider,
  rawSocket,
  sleep,
  sql,
  startCollab,
  token,
  waitFor,
  Y,
} from "./helpers.js";

const sorted = (map) => JSON.stringify(Object.entries(map.toJSON()).sort());
function varUint(n) {
  const out = [];
  while (n >= 128n) {
    out.push(Number(n & 127n) | 128);
    n >>= 7n;
  }
  out.push(Number(n));
  return out;
}
/** A y-websocket awareness message with one entry for `id` (state `null`). */
function awarenessFrame(id) {
  const inner = [1, ...varUint(id), 0, 4, ...Buffer.from("null")];
  return Buffer.from([1, ...varUint(BigInt(inner.length)), ...inner]);
}
const room = (what) => `${what}-${randomUUID().slice(0, 8)}`;

describe("flux serve collab with y-websocket", () => {
  let server;
  let admin;
  let adminId;
  before(async () => {
    server = await startCollab();
    admin = adminToken(server);
    adminId = JSON.parse(Buffer.from(admin.split(".")[1], "base64url").toString()).id;
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  test("two providers converge on concurrent Y.Text and Y.Map edits", async () => {
    const r = room("converge");
    const a = await provider(server, r);
    const b = await provider(server, r);
    a.doc.getText("t").insert(0, "hello ");
    b.doc.getText("t").insert(0, "world ");
    a.doc.getMap("m").set("a", 1);
    b.doc.getMap("m").set("b", 2);
    b.doc.getMap("m").set("a", "from-b");
    await waitFor(
      () =>
        a.doc.getText("t").toString() === b.doc.getText("t").toString() &&
        a.doc.getText("t").length === 12 &&
        sorted(a.doc.getMap("m")) === sorted(b.doc.getMap("m")) &&
        a.doc.getMap("m").size === 2,
      { message: "convergence" },
    );
    assert.equal(a.doc.getMap("m").get("b"), 2);
    destroy(a, b);
  });

  test("a late joiner gets the full state", async () => {
    const r = room("late");
    const a = await provider(server, r);
    for (let i = 0; i < 50; i++) a.doc.getArray("list").push([i]);
    a.doc.getText("t").insert(0, "early content");
    await sleep(100);
    const b = await provider(server, r);
    await waitFor(() => b.doc.getArray("list").length === 50, { message: "late joiner state" });
    assert.equal(b.doc.getText("t").toString(), "early content");
    destroy(a, b);
  });

  test("awareness appears, then disappears within 1 s of a disconnect", async () => {
    const r = room("aware");
    const a = await provider(server, r);
    const b = await provider(server, r);
    a.p.awareness.setLocalStateField("user", { name: "Ada" });
    const aId = a.doc.clientID;
    await waitFor(() => b.p.awareness.getStates().get(aId)?.user?.name === "Ada", { message: "awareness of a at b" });
    // A late joiner sees it too.
    const c = await provider(server, r);
    await waitFor(() => c.p.awareness.getStates().get(aId)?.user?.name === "Ada", { message: "awareness at late joiner" });
    // Drop a's socket without a goodbye awareness message.
    a.p.shouldConnect = false;
    a.p.ws.terminate();
    const t0 = Date.now();
    await waitFor(() => !b.p.awareness.getStates().has(aId) && !c.p.awareness.getStates().has(aId), {
      timeout: 1000,
      message: "awareness removal",
    });
    assert.ok(Date.now() - t0 <= 1000);
    destroy(a, b, c);
  });

  test("rooms are isolated and ?token= does not change the room", async () => {
    const r1 = room("iso");
    const r2 = room("iso");
    const a = await provider(server, r1, { tok: token("same-user") });
    const b = await provider(server, r1, { tok: token("other-user") });
    const c = await provider(server, r2);
    a.doc.getText("t").insert(0, "only r1");
    await waitFor(() => b.doc.getText("t").toString() === "only r1", { message: "same room, different tokens" });
    await sleep(200);
    assert.equal(c.doc.getText("t").toString(), "");
    const stats = await getJson(`${server.base}/stats`, { bearer: admin });
    assert.equal(stats.status, 200);
    assert.equal(stats.body.rooms[r1].connections, 2);
    for (const name of Object.keys(stats.body.rooms)) assert.ok(!name.includes("token"), name);
    const health = await getJson(`${server.base}/health`);
    assert.equal(health.body.service, "collaboration-server");
    assert.ok(!JSON.stringify(health.body).includes("token="));
    destroy(a, b, c);
  });

  test("a legacy JSON client and a binary provider converge in one room", async () => {
    const r = room("legacy");
    const a = await provider(server, r);
    a.doc.getText("t").insert(0, "from provider");
    const legacy = rawSocket(`${server.ws}/${r}?token=${token()}`);
    await legacy.opened;
    // The legacy client speaks first; it is greeted with sync-init.
    legacy.ws.send(JSON.stringify({ type: "sync-request" }));
    const state = await waitFor(() => legacy.messages.find((m) => typeof m === "string" && m.includes("sync-state")), {
      message: "sync-state",
    });
    assert.ok(legacy.messages.some((m) => typeof m === "string" && JSON.parse(m).type === "sync-init"));
    const ldoc = new Y.Doc();
    Y.applyUpdate(ldoc, Uint8Array.from(JSON.parse(state).state));
    assert.equal(ldoc.getText("t").toString(), "from provider");
    // Legacy → provider.
    ldoc.on("update", (u) => legacy.ws.send(JSON.stringify({ type: "sync-update", update: Array.from(u) })));
    ldoc.getText("t").insert(0, "legacy+");
    await waitFor(() => a.doc.getText("t").toString() === "legacy+from provider", { message: "legacy edit at provider" });
    // Provider → legacy, once.
    const before = legacy.messages.filter((m) => typeof m === "string" && m.includes("sync-update")).length;
    a.doc.getText("t").insert(a.doc.getText("t").length, "!");
    await waitFor(
      () => legacy.messages.filter((m) => typeof m === "string" && m.includes("sync-update")).length === before + 1,
      { message: "provider edit at legacy" },
    );
    await sleep(200);
    const updates = legacy.messages.filter((m) => typeof m === "string" && m.includes("sync-update"));
    assert.equal(updates.length, before + 1, "each update reaches a peer once");
    Y.applyUpdate(ldoc, Uint8Array.from(JSON.parse(updates.at(-1)).update));
    assert.equal(ldoc.getText("t").toString(), "legacy+from provider!");
    legacy.ws.close();
    destroy(a);
  });

  test("garbage frames close only their own connection", async () => {
    const r = room("garbage");
    const a = await provider(server, r);
    const b = await provider(server, r);
    for (const [payload, codes] of [
      [Buffer.from([0, 0, 200, 1]), [1007]],
      [Buffer.from([0, 2, 5, 9, 9, 9, 9, 9]), [1007]],
      ["not json at all", [1007, 1003]],
      [JSON.stringify({ type: "sync-update", update: "nope" }), [1007, 1003]],
      // An awareness client id of 2^53: yrs would panic on it.
      [awarenessFrame(2n ** 53n), [1007]],
    ]) {
      const bad = rawSocket(`${server.ws}/${r}?token=${token()}`);
      await bad.opened;
      bad.ws.send(payload);
      const { code } = await bad.closed;
      assert.ok(codes.includes(code), `close code ${code} for ${payload.toString()}`);
    }
    a.doc.getText("t").insert(0, "still syncing");
    await waitFor(() => b.doc.getText("t").toString() === "still syncing", { message: "others keep syncing" });
    destroy(a, b);
  });

  test("a 2 MB document syncs", async () => {
    const r = room("big");
    const a = await provider(server, r);
    const chunk = "x".repeat(1024);
    a.doc.transact(() => {
      for (let i = 0; i < 2048; i++) a.doc.getText("t").insert(i * 1024, chunk);
    });
    await sleep(300);
    const b = await provider(server, r);
    await waitFor(() => b.doc.getText("t").length === 2048 * 1024, { timeout: 15_000, message: "2 MB at the late joiner" });
    destroy(a, b);
  });

  test("a bad token closes with 4401 and the provider stops retrying", async () => {
    const r = room("auth");
    for (const tok of ["not-a-token", token("x", { secret: "some-other-secret-0123456789-abcdef" }), null]) {
      const doc = new Y.Doc();
      const { p } = await provider(server, r, { tok, doc, sync: false });
      const closed = await new Promise((resolve) => p.on("closed", (ev) => resolve(ev)));
      assert.equal(closed.code, 4401);
      await sleep(400);
      assert.equal(p.shouldConnect, false);
      assert.equal(p.wsconnected, false);
      p.destroy();
    }
  });

  test("project rooms require membership", async () => {
    const project = randomUUID();
    const member = randomUUID();
    const now = new Date().toISOString();
    sql(
      server,
      `INSERT INTO users (id, email, name, created_at, updated_at) VALUES ('${member}', '${member}@example.com', 'M', '${now}', '${now}');
       INSERT INTO projects (id, name, created_at, updated_at) VALUES ('${project}', 'P', '${now}', '${now}');
       INSERT INTO project_members (project_id, user_id, role, joined_at) VALUES ('${project}', '${member}', 'member', '${now}');`,
    );
    const ok = await provider(server, `project-${project}`, { tok: token(member) });
    ok.doc.getText("t").insert(0, "members only");
    const { p, doc } = await provider(server, `project-${project}`, { tok: token(randomUUID()), sync: false });
    const closed = await new Promise((resolve) => p.on("closed", (ev) => resolve(ev)));
    assert.equal(closed.code, 4403);
    assert.equal(doc.getText("t").toString(), "");
    p.destroy();
    destroy(ok);
  });

  test("rooms unload when their last peer leaves", async () => {
    const r = room("unload");
    const a = await provider(server, r);
    a.doc.getText("t").insert(0, "x");
    destroy(a);
    await waitFor(async () => !(await getJson(`${server.base}/stats`, { bearer: admin })).body.rooms[r], {
      message: "room unloaded",
    });
  });

  test("/health and /stats show counts to anyone, room names and users to an admin only", async () => {
    const r = room("private");
    const user = randomUUID();
    const a = await provider(server, r, { tok: token(user) });
    const views = {
      anonymous: undefined,
      user: token(user),
      "forged admin claim": token(user, { userType: "admin" }),
      "admin refresh token": token(adminId, { userType: "admin", type: "refresh" }),
    };
    for (const [who, bearer] of Object.entries(views)) {
      for (const path of ["/health", "/stats"]) {
        const res = await getJson(`${server.base}${path}`, { bearer });
        assert.equal(res.status, 200, `${who} ${path}`);
        assert.ok(res.body.connections >= 1, `${who} ${path}: ${res.text}`);
        assert.ok(res.body.activeRooms >= 1, `${who} ${path}: ${res.text}`);
        assert.equal(res.body.rooms, undefined, `${who} ${path}: ${res.text}`);
        assert.ok(!res.text.includes(r) && !res.text.includes(user), `${who} ${path}: ${res.text}`);
      }
    }
    const stats = await getJson(`${server.base}/stats`, { bearer: admin });
    assert.deepEqual(stats.body.rooms[r], { connections: 1, users: [user] });
    destroy(a);
  });
});

for (const backend of ["sqlite", "postgres"]) {
  describe(`persistence (${backend})`, () => {
    const pg = backend === "postgres" ? freshPostgres() : null;
    const skip = backend === "postgres" && !pg ? "FLUX_TEST_DATABASE_URL is not set" : false;
    after(() => pg?.drop());

    test("a document survives a graceful restart", { skip }, async () => {
      let server = await startCollab(pg ? { databaseUrl: pg.url } : {});
      const r = room("persist");
      const a = await provider(server, r);
      a.doc.getText("t").insert(0, "persisted text");
      a.doc.getMap("m").set("k", "v");
      await sleep(300);
      destroy(a);
      await server.stop("SIGTERM");
      server = await startCollab({ dir: server.dir, databaseUrl: server.databaseUrl });
      const b = await provider(server, r);
      await waitFor(() => b.doc.getText("t").toString() === "persisted text", { message: "restored text" });
      assert.equal(b.doc.getMap("m").get("k"), "v");
      destroy(b);
      await server.stop();
      server.cleanup();
    });

    test("after kill -9, what was batched is there and a provider restores the rest", { skip }, async () => {
      let server = await startCollab(pg ? { databaseUrl: pg.url } : {});
      const r = room("kill9");
      const a = await provider(server, r);
      a.doc.getText("t").insert(0, "before crash");
      await sleep(1200);
      await server.stop("SIGKILL");
      const fresh = await startCollab({ dir: server.dir, databaseUrl: server.databaseUrl });
      // Edits made while the server is down live only in the provider's own state.
      a.doc.getText("t").insert(a.doc.getText("t").length, " + offline");
      const b = await provider(fresh, r);
      await waitFor(() => b.doc.getText("t").toString() === "before crash", { message: "batched updates survive kill -9" });
      // The provider that kept its state restores the rest by syncing with the new server.
      a.p.destroy();
      const c = await provider(fresh, r, { doc: a.doc });
      await waitFor(() => b.doc.getText("t").toString() === "before crash + offline", { message: "restored by the provider" });
      destroy(b);
      c.p.destroy();
      await fresh.stop();
      fresh.cleanup();
    });
  });
}

// Two processes on one SQLite file and one Redis (FLUX_TEST_REDIS_URL): a provider on each converges.
describe("two flux serve collab instances over Redis", () => {
  const redisUrl = process.env.FLUX_TEST_REDIS_URL;
  const skip = redisUrl ? false : "FLUX_TEST_REDIS_URL is not set (collaboration across instances needs Redis)";
  if (skip) console.log(`skipping: ${skip}`);

  test("providers on different instances converge both ways", { skip }, async () => {
    const env = { REDIS_URL: redisUrl };
    const first = await startCollab({ env });
    const second = await startCollab({ databaseUrl: first.databaseUrl, env });
    try {
      const r = room("cluster");
      const a = await provider(first, r);
      const b = await provider(second, r);
      a.doc.getText("t").insert(0, "from A ");
      await waitFor(() => b.doc.getText("t").toString() === "from A ", { message: "A's edit on B" });
      b.doc.getText("t").insert(b.doc.getText("t").length, "from B");
      a.doc.getMap("m").set("a", 1);
      b.doc.getMap("m").set("b", 2);
      await waitFor(
        () =>
          a.doc.getText("t").toString() === "from A from B" &&
          b.doc.getText("t").toString() === "from A from B" &&
          sorted(a.doc.getMap("m")) === sorted(b.doc.getMap("m")) &&
          a.doc.getMap("m").size === 2,
        { message: "convergence across instances" },
      );
      // A provider joining the second instance later gets everything too.
      const c = await provider(second, r);
      await waitFor(() => c.doc.getText("t").toString() === "from A from B", { message: "late joiner on B" });
      destroy(a, b, c);

      // Clients of the original JSON protocol: one edits on the first instance at once, one on the
      // second never speaks; both converge.
      const r2 = room("cluster-json");
      const silent = await jsonPeer(second, r2);
      const talker = await jsonPeer(first, r2);
      await sleep(200); // both rooms joined the cluster
      talker.doc.getText("t").insert(0, "across instances");
      await waitFor(() => silent.doc.getText("t").toString() === "across instances", {
        message: "JSON edit at a silent JSON peer on the other instance",
      });
      silent.close();
      talker.close();
    } finally {
      await second.stop();
      await first.stop();
      second.cleanup();
      first.cleanup();
    }
  });
});
