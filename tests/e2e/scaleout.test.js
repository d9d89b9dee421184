// Scale-out end to end (issue 6): two real `flux serve unified` processes on different ports, sharing
// one database (PostgreSQL when FLUX_TEST_DATABASE_URL is set, else one SQLite file) and one Redis,
// driven by the real socket.io-client. Skips, saying why, without FLUX_TEST_REDIS_URL.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import {
  addTeam,
  addUser,
  clusterSkipReason,
  migrate,
  privateRedis,
  readiness,
  sharedDatabase,
  startInstance,
} from "./cluster-helpers.js";
import { httpRequest, sleep, waitFor } from "./helpers.js";
import { api, client, connected, silent, STEP } from "./messaging-helpers.js";

const skip = clusterSkipReason();
if (skip) console.log(`# skipping the scale-out suite: ${skip}`);

const SECRET = `cluster-e2e-secret-${"z".repeat(24)}-${process.pid}`;
const closeAll = (...cs) => cs.forEach((c) => c?.close());
const markAll = (...cs) => cs.forEach((c) => c.mark());

async function createChannel(instance, user, teamId, name) {
  const res = await api(instance, "POST", "/api/channels", user.token, { name, teamId });
  assert.equal(res.status, 200, res.text);
  return res.json.id;
}

async function join(c, channel) {
  c.mark();
  c.emit("channel:join", channel);
  return c.next("channel:messages");
}

describe("two flux serve unified instances over one Redis and one database", { skip: skip ?? false }, () => {
  let db, a, b, alice, bob, carol, channel;

  before(async () => {
    db = sharedDatabase();
    migrate(db, SECRET);
    const redisUrl = process.env.FLUX_TEST_REDIS_URL;
    // Small auth budget so the shared limit is reached quickly; per-socket budgets lifted.
    const env = { FLUX__RATE_LIMIT__AUTH_MAX: "4", FLUX__SOCKETIO__EVENT_BURST: "100000" };
    a = await startInstance({ db, redisUrl, secret: SECRET, env });
    b = await startInstance({ db, redisUrl, secret: SECRET, env });
    const tag = `${process.pid}-${Date.now()}`;
    alice = addUser(db, SECRET, `alice-${tag}`, { name: "Alice" });
    bob = addUser(db, SECRET, `bob-${tag}`, { name: "Bob" });
    carol = addUser(db, SECRET, `carol-${tag}`, { name: "Carol" });
    addTeam(db, `team-${tag}`, [alice.id, bob.id]);
    channel = await createChannel(a, alice, `team-${tag}`, "general");
  });

  after(async () => {
    const results = await Promise.allSettled([a?.stop(), b?.stop()]);
    db?.drop();
    for (const r of results) if (r.status === "rejected") throw r.reason;
    for (const r of results) assert.equal(r.value?.code, 0);
  });

  it("both instances report the cluster as up", async () => {
    for (const inst of [a, b]) {
      const r = await readiness(inst);
      assert.equal(r.status, 200);
      assert.equal(r.body.status, "ready");
      assert.equal(r.body.dependencies.redis, "ok");
      const services = await httpRequest(`${inst.url}/services`);
      assert.equal(services.json.cluster.redis, "ok");
    }
  });

  it("a message sent through A reaches a socket on B, and back (websocket and polling)", async () => {
    const ca = client(a.url, alice);
    const cb = client(b.url, bob, { transports: ["polling"] });
    try {
      await Promise.all([connected(ca), connected(cb)]);
      await join(ca, channel);
      await join(cb, channel);
      markAll(ca, cb);
      ca.emit("message:send", { channelId: channel, text: "from A" });
      const got = await cb.next("message:new", (m) => m.text === "from A");
      assert.equal(got.author?.id ?? got.authorId ?? got.userId, alice.id);
      markAll(ca, cb);
      cb.emit("message:send", { channelId: channel, text: "from B" });
      await ca.next("message:new", (m) => m.text === "from B");
      // Typing is relayed across instances too.
      markAll(ca, cb);
      cb.emit("typing:start", channel);
      await ca.next("user:typing", (t) => t.userId === bob.id);
    } finally {
      closeAll(ca, cb);
    }
  });

  it("REST-triggered emits and notifications reach sockets on the other instance", async () => {
    const cb = client(b.url, bob);
    try {
      await connected(cb);
      await join(cb, channel);
      cb.mark();
      const res = await api(a, "POST", "/api/messages", alice.token, {
        conversationId: channel,
        content: "@bob over REST on A",
        mentions: [bob.id],
      });
      assert.equal(res.status, 201, res.text);
      const msg = await cb.next("message:new", (m) => m.id === res.json.id);
      assert.equal(msg.conversationId ?? msg.channelId, channel);
      await cb.next("notification:mention", () => true);
      // A DM sent on A reaches bob's personal room on B.
      cb.mark();
      const ca = client(a.url, alice);
      try {
        await connected(ca);
        ca.emit("dm:send", { recipientId: bob.id, text: "psst across" });
        await cb.next("dm:new", (m) => (m.text ?? m.content) === "psst across");
      } finally {
        ca.close();
      }
    } finally {
      cb.close();
    }
  });

  it("a stranger on B hears nothing of the channel", async () => {
    const ca = client(a.url, alice);
    const cc = client(b.url, carol);
    try {
      await Promise.all([connected(ca), connected(cc)]);
      await join(ca, channel);
      cc.mark();
      ca.emit("message:send", { channelId: channel, text: "members only" });
      await ca.next("message:new", (m) => m.text === "members only");
      assert.ok(await silent(cc, "message:new", 500));
    } finally {
      closeAll(ca, cc);
    }
  });

  it("presence: online from A is seen on B; offline only when the last socket on either instance closes", async () => {
    // Fresh users: the earlier tests' sockets of alice and bob are still within their offline grace.
    const tag = `p-${process.pid}-${Date.now()}`;
    const dave = addUser(db, SECRET, `dave-${tag}`);
    const erin = addUser(db, SECRET, `erin-${tag}`);
    addTeam(db, `pteam-${tag}`, [dave.id, erin.id]);
    await createChannel(a, dave, `pteam-${tag}`, "presence");
    const watcher = client(b.url, erin);
    await connected(watcher);
    let a1, b1;
    try {
      watcher.mark();
      a1 = client(a.url, dave);
      await connected(a1);
      await watcher.next("user:online", (p) => p.userId === dave.id);
      // users:online asked on B lists dave, who is connected to A.
      watcher.mark();
      watcher.emit("users:get-online");
      const list = await watcher.next("users:online");
      assert.ok(
        list.some((e) => (e.userId ?? e.id) === dave.id),
        `users:online on B lists dave: ${JSON.stringify(list)}`,
      );
      // A second socket of dave on B: no second "online".
      watcher.mark();
      b1 = client(b.url, dave);
      await connected(b1);
      assert.ok(await silent(watcher, "user:online", 600, (p) => p.userId === dave.id));
      // Closing the socket on A: dave still has one on B, so no offline (grace is 5 s).
      a1.close();
      assert.ok(await silent(watcher, "user:offline", 6500, (p) => p.userId === dave.id));
      // Closing the last one: offline after the grace.
      b1.close();
      await watcher.next("user:offline", (p) => p.userId === dave.id, 9000);
    } finally {
      closeAll(watcher, a1, b1);
    }
  });

  it("the auth rate limit is shared: attempts on A and B add up", async () => {
    // The SPA's double-submit CSRF: the token from one instance is valid on the other (no per-process state).
    const csrf = await httpRequest(`${a.url}/api/csrf-token`);
    assert.equal(csrf.status, 200, csrf.text);
    const cookie = [csrf.headers["set-cookie"]].flat().map((c) => c.split(";")[0]).join("; ");
    const login = (inst) =>
      httpRequest(`${inst.url}/api/auth/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf.json.csrfToken, Cookie: cookie },
        body: JSON.stringify({ email: `nobody-${process.pid}@example.com`, password: "wrong-password-1" }),
      });
    // Budget 4 per IP and window across the cluster: 2 on A, 2 on B, then both refuse.
    for (const inst of [a, a, b, b]) {
      const r = await login(inst);
      assert.notEqual(r.status, 429, `within the budget: ${r.text}`);
    }
    const overA = await login(a);
    const overB = await login(b);
    assert.equal(overB.status, 429, overB.text);
    assert.equal(overA.status, 429, overA.text);
  });
});

describe("Redis stopped and restarted under two running instances", { skip: skip ?? false }, () => {
  let db, redis, a, b, alice, bob, channel;

  before(async () => {
    db = sharedDatabase();
    migrate(db, SECRET);
    redis = await privateRedis();
    const env = { FLUX__SOCKETIO__EVENT_BURST: "100000" };
    a = await startInstance({ db, redisUrl: redis.url, secret: SECRET, env });
    b = await startInstance({ db, redisUrl: redis.url, secret: SECRET, env });
    const tag = `${process.pid}-${Date.now()}`;
    alice = addUser(db, SECRET, `ra-${tag}`);
    bob = addUser(db, SECRET, `rb-${tag}`);
    addTeam(db, `rteam-${tag}`, [alice.id, bob.id]);
    channel = await createChannel(a, alice, `rteam-${tag}`, "outage");
  });

  after(async () => {
    const results = await Promise.allSettled([a?.stop(), b?.stop()]);
    await redis?.stop();
    db?.drop();
    for (const r of results) if (r.status === "rejected") throw r.reason;
    for (const r of results) assert.equal(r.value?.code, 0);
  });

  it("each instance keeps serving locally, reports degraded, and rejoins by itself", async () => {
    const ca = client(a.url, alice);
    const cb = client(b.url, bob);
    const ca2 = client(a.url, bob);
    try {
      await Promise.all([connected(ca), connected(cb), connected(ca2)]);
      for (const c of [ca, cb, ca2]) await join(c, channel);
      markAll(ca, cb);
      ca.emit("message:send", { channelId: channel, text: "before" });
      await cb.next("message:new", (m) => m.text === "before");

      await redis.stop();
      for (const inst of [a, b]) {
        const r = await waitFor(
          async () => {
            const r = await readiness(inst);
            return r.body?.dependencies?.redis === "degraded" ? r : null;
          },
          { timeout: 8000, message: "readiness to report redis degraded" },
        );
        // Still in rotation: Redis is not storage.
        assert.equal(r.status, 200);
        assert.equal(r.body.status, "degraded");
      }
      // Local delivery on A goes on, promptly, and the write is stored.
      markAll(ca, ca2);
      const t0 = Date.now();
      ca.emit("message:send", { channelId: channel, text: "during" });
      await ca2.next("message:new", (m) => m.text === "during", STEP);
      assert.ok(Date.now() - t0 < 2000, `local delivery took ${Date.now() - t0} ms`);
      // REST still works on both (no 500 while Redis is down).
      const hist = await api(b, "GET", `/api/conversations/${channel}/messages`, bob.token);
      assert.equal(hist.status, 200, hist.text);
      assert.ok(JSON.stringify(hist.json).includes("during"), "the message sent during the outage is stored");

      await redis.start();
      for (const inst of [a, b]) {
        await waitFor(
          async () => (await readiness(inst)).body?.dependencies?.redis === "ok",
          { timeout: 15_000, message: "readiness to report redis ok again" },
        );
      }
      // Fan-out is back without restarting anything (the sockets too survived the outage).
      markAll(ca, cb);
      await waitFor(
        async () => {
          ca.emit("message:send", { channelId: channel, text: `after-${Date.now()}` });
          await sleep(300);
          return cb.seen("message:new", (m) => String(m.text).startsWith("after-")).length > 0;
        },
        { timeout: 10_000, interval: 200, message: "a message from A to reach B after Redis came back" },
      );
      markAll(ca, cb);
      cb.emit("message:send", { channelId: channel, text: "B to A after" });
      await ca.next("message:new", (m) => m.text === "B to A after");
    } finally {
      closeAll(ca, cb, ca2);
    }
  });
});

describe("split topology over Redis: serve auth + serve messaging", { skip: skip ?? false }, () => {
  let db, auth, messaging, alice, bob, team, channel;

  before(async () => {
    db = sharedDatabase();
    migrate(db, SECRET);
    const redisUrl = process.env.FLUX_TEST_REDIS_URL;
    auth = await startInstance({ target: "auth", db, redisUrl, secret: SECRET });
    messaging = await startInstance({ target: "messaging", db, redisUrl, secret: SECRET });
    const tag = `s-${process.pid}-${Date.now()}`;
    alice = addUser(db, SECRET, `sa-${tag}`);
    bob = addUser(db, SECRET, `sb-${tag}`);
    team = `steam-${tag}`;
    addTeam(db, team, [alice.id, bob.id]);
    channel = await createChannel(messaging, alice, team, "split");
  });

  after(async () => {
    const results = await Promise.allSettled([auth?.stop(), messaging?.stop()]);
    db?.drop();
    for (const r of results) if (r.status === "rejected") throw r.reason;
    for (const r of results) assert.equal(r.value?.code, 0);
  });

  it("serve auth still refuses /messaging clients like an unknown namespace", async () => {
    const c = client(auth.url, alice);
    try {
      const err = await new Promise((resolve) => c.socket.once("connect_error", resolve));
      assert.equal(err.message, "Invalid namespace");
    } finally {
      c.close();
    }
  });

  it("leaving a team on serve auth evicts the sockets on serve messaging from its channels", async () => {
    const ca = client(messaging.url, alice);
    const cb = client(messaging.url, bob);
    try {
      await Promise.all([connected(ca), connected(cb)]);
      await join(ca, channel);
      await join(cb, channel);
      markAll(ca, cb);
      ca.emit("message:send", { channelId: channel, text: "still a member" });
      await cb.next("message:new", (m) => m.text === "still a member");

      const csrf = await httpRequest(`${auth.url}/api/csrf-token`);
      const cookie = [csrf.headers["set-cookie"]].flat().map((c) => c.split(";")[0]).join("; ");
      const res = await httpRequest(`${auth.url}/api/teams/${team}/members/${bob.id}`, {
        method: "DELETE",
        headers: { Authorization: `Bearer ${bob.token}`, "X-CSRF-Token": csrf.json.csrfToken, Cookie: cookie },
      });
      assert.equal(res.status, 200, res.text);

      // The eviction travels auth → Redis → messaging; give it a moment, then nothing reaches bob.
      await sleep(300);
      markAll(ca, cb);
      ca.emit("message:send", { channelId: channel, text: "after bob left" });
      await ca.next("message:new", (m) => m.text === "after bob left");
      assert.ok(await silent(cb, "message:new", 600), "bob's socket no longer receives the channel");
    } finally {
      closeAll(ca, cb);
    }
  });
});
