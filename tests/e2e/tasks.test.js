// Live task events of the project page (issue 12) over the real socket.io-client on namespace `/`:
// two members of a project's team and a stranger, on `flux serve unified`.
// Run: `npm test` in this directory (FLUX_BIN names the binary to test).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import {
  addTeam as addClusterTeam,
  addUser as addClusterUser,
  clusterSkipReason,
  migrate,
  sharedDatabase,
  startInstance,
} from "./cluster-helpers.js";
import { addTeam, addUser, api, client, connected, silent, sql, startTarget } from "./messaging-helpers.js";

const closeAll = (...cs) => cs.forEach((c) => c?.close());
const root = (server, user) => client(server.url, user, { ns: "/" });

describe("flux serve unified — live task events on /", () => {
  let server, alice, bob, carol, projectId;

  before(async () => {
    server = await startTarget("unified");
    alice = addUser(server, "alice", { name: "Alice" });
    bob = addUser(server, "bob", { name: "Bob" });
    carol = addUser(server, "carol", { name: "Carol" });
    addTeam(server, "team-ab", [alice.id, bob.id]);
    const res = await api(server, "POST", "/api/projects", alice.token, { name: "Show", teamId: "team-ab", members: [] });
    assert.equal(res.status, 200, res.text);
    projectId = res.json.project.id;
  });

  after(async () => {
    if (server) {
      const { code } = await server.stop();
      assert.equal(code, 0, server.logs());
    }
  });

  it("refuses a connection without a valid token", async () => {
    for (const user of [null, { token: "not-a-jwt" }]) {
      const c = root(server, user);
      try {
        await assert.rejects(connected(c), (e) => /Authentication required|Invalid token/.test(e.message));
      } finally {
        closeAll(c);
      }
    }
  });

  it("relays task events between members, with presence, and never to or from a stranger", async () => {
    const a = root(server, alice);
    const b = root(server, bob);
    const c = root(server, carol);
    try {
      await Promise.all([connected(a), connected(b), connected(c)]);

      a.mark();
      a.emit("join:project", { projectId });
      const p1 = await a.next("presence:update", (p) => p.users.length === 1);
      assert.equal(p1.projectId, projectId);
      assert.deepEqual(p1.users.map((u) => [u.id, u.name]), [["alice", "Alice"]]);
      assert.equal(typeof p1.users[0].joinedAt, "string");

      a.mark();
      b.mark();
      b.emit("join:project", { projectId });
      const p2 = await a.next("presence:update", (p) => p.users.length === 2);
      assert.deepEqual(p2.users.map((u) => u.id).sort(), ["alice", "bob"]);
      await b.next("presence:update", (p) => p.users.length === 2);

      // The stranger and an unknown project: an error on that socket only, nothing joined.
      assert.match(await c.error("join:project", { projectId }), /member/i);
      assert.match(await c.error("join:project", { projectId: "no-such-project" }), /not found/i);
      assert.match(await c.error("join:project", {}), /projectId/);

      // Member → the room except the sender, identity from the token (not the payload).
      a.mark();
      b.mark();
      c.mark();
      const task = { id: "t-1", title: "Lights", status: "todo" };
      a.emit("task:created", { projectId, task, userId: "mallory", userName: "Mallory" });
      const created = await b.next("task:created");
      assert.equal(created.projectId, projectId);
      assert.deepEqual(created.task, task);
      assert.equal(created.userId, "alice");
      assert.equal(created.userName, "Alice");
      assert.equal(typeof created.timestamp, "string");

      b.emit("task:updated", { projectId, task: { ...task, status: "in-progress" } });
      const updated = await a.next("task:updated");
      assert.equal(updated.task.status, "in-progress");
      assert.equal(updated.userId, "bob");

      a.emit("task:deleted", { projectId, taskId: "t-1" });
      const deleted = await b.next("task:deleted");
      assert.equal(deleted.taskId, "t-1");
      assert.equal(deleted.userId, "alice");

      assert.ok(await silent(a, "task:created"), "the sender does not get its own event");
      assert.ok(await silent(c, "task:created", 0), "the stranger hears nothing");
      assert.ok(await silent(c, "task:deleted", 0));

      // The stranger's task events reach nobody.
      a.mark();
      b.mark();
      assert.match(await c.error("task:updated", { projectId, task: { id: "t-1", title: "pwned" } }), /member/i);
      assert.match(await c.error("task:deleted", { projectId, taskId: "t-1" }), /member/i);
      assert.ok(await silent(a, "task:updated"));
      assert.ok(await silent(b, "task:updated", 0));
      assert.ok(await silent(b, "task:deleted", 0));

      // Bad payloads: an error, no relay.
      assert.match(await a.error("task:created", { projectId }), /task/);
      assert.match(await a.error("task:deleted", { projectId }), /taskId/);
      assert.ok(await silent(b, "task:created", 200));

      // Leave and disconnect update the presence.
      a.mark();
      b.emit("leave:project", { projectId });
      const p3 = await a.next("presence:update", (p) => p.users.length === 1);
      assert.deepEqual(p3.users.map((u) => u.id), ["alice"]);
      a.mark();
      b.emit("task:created", { projectId, task });
      // A member outside the room may still tell it.
      assert.equal((await a.next("task:created")).userId, "bob");

      b.mark();
      b.emit("join:project", { projectId });
      await b.next("presence:update", (p) => p.users.length === 2);
      b.mark();
      a.close();
      const p4 = await b.next("presence:update", (p) => p.users.length === 1);
      assert.deepEqual(p4.users.map((u) => u.id), ["bob"]);
    } finally {
      closeAll(a, b, c);
    }
  });
});


describe("flux serve unified — leaving the team leaves the project's live room", () => {
  let server, alice, bob, projectId;

  before(async () => {
    server = await startTarget("unified");
    alice = addUser(server, "alice", { name: "Alice" });
    bob = addUser(server, "bob", { name: "Bob" });
    addTeam(server, "team-ab", [alice.id, bob.id]);
    sql(server, "UPDATE group_members SET role = 'owner' WHERE user_id = 'alice';");
    const res = await api(server, "POST", "/api/projects", alice.token, { name: "Show", teamId: "team-ab" });
    assert.equal(res.status, 200, res.text);
    projectId = res.json.project.id;
  });

  after(async () => {
    if (server) {
      const { code } = await server.stop();
      assert.equal(code, 0, server.logs());
    }
  });

  it("a removed member's open socket stops hearing the project", async () => {
    const a = root(server, alice);
    const b = root(server, bob);
    try {
      await Promise.all([connected(a), connected(b)]);
      a.emit("join:project", { projectId });
      b.emit("join:project", { projectId });
      await a.next("presence:update", (p) => p.users.length === 2);
      const res = await api(server, "DELETE", `/api/teams/team-ab/members/bob`, alice.token);
      assert.equal(res.status, 200, res.text);
      b.mark();
      a.emit("task:created", { projectId, task: { id: "t-9", title: "Secret" } });
      assert.ok(await silent(b, "task:created", 600), "evicted from the room");
      assert.match(await b.error("join:project", { projectId }), /member/i);
    } finally {
      closeAll(a, b);
    }
  });
});

const skip = clusterSkipReason();
if (skip) console.log(`# skipping the cross-instance task events: ${skip}`);

describe("live task events across two instances over Redis", { skip: skip ?? false }, () => {
  const SECRET = `tasks-e2e-secret-${"t".repeat(24)}-${process.pid}`;
  let db, a, b, alice, bob, carol, projectId;

  before(async () => {
    db = sharedDatabase();
    migrate(db, SECRET);
    const redisUrl = process.env.FLUX_TEST_REDIS_URL;
    a = await startInstance({ db, redisUrl, secret: SECRET });
    b = await startInstance({ db, redisUrl, secret: SECRET });
    const tag = `${process.pid}-${Date.now()}`;
    alice = addClusterUser(db, SECRET, `alice-${tag}`, { name: "Alice" });
    bob = addClusterUser(db, SECRET, `bob-${tag}`, { name: "Bob" });
    carol = addClusterUser(db, SECRET, `carol-${tag}`, { name: "Carol" });
    addClusterTeam(db, `team-${tag}`, [alice.id, bob.id]);
    const res = await api(a, "POST", "/api/projects", alice.token, { name: "Tour", teamId: `team-${tag}` });
    assert.equal(res.status, 200, res.text);
    projectId = res.json.project.id;
  });

  after(async () => {
    const results = await Promise.allSettled([a?.stop(), b?.stop()]);
    db?.drop();
    for (const r of results) if (r.status === "rejected") throw r.reason;
  });

  it("presence, socket and REST task events cross instances; a stranger on B hears nothing", async () => {
    const ca = root(a, alice);
    const cb = root(b, bob);
    const cc = root(b, carol);
    try {
      await Promise.all([connected(ca), connected(cb), connected(cc)]);
      ca.emit("join:project", { projectId });
      await ca.next("presence:update", (p) => p.users.length === 1);
      ca.mark();
      cb.emit("join:project", { projectId });
      const p = await ca.next("presence:update", (x) => x.users.length === 2);
      assert.deepEqual(p.users.map((u) => u.id).sort(), [alice.id, bob.id].sort());
      assert.match(await cc.error("join:project", { projectId }), /member/i);

      cb.mark();
      cc.mark();
      ca.emit("task:created", { projectId, task: { id: "x-1", title: "Across" } });
      const created = await cb.next("task:created");
      assert.equal(created.userId, alice.id);
      assert.equal(created.task.id, "x-1");

      // A REST change on B reaches A's socket, authored by the caller.
      ca.mark();
      const res = await api(b, "POST", `/api/projects/${projectId}/tasks`, bob.token, { title: "From REST" });
      assert.equal(res.status, 201, res.text);
      const viaRest = await ca.next("task:created", (x) => x.task?.id === res.json.task.id);
      assert.equal(viaRest.userId, bob.id);
      assert.equal(viaRest.userName, "Bob");
      assert.equal(viaRest.projectId, projectId);

      assert.match(await cc.error("task:deleted", { projectId, taskId: "x-1" }), /member/i);
      assert.ok(await silent(ca, "task:deleted"));
      assert.ok(await silent(cc, "task:created", 0));
    } finally {
      closeAll(ca, cb, cc);
    }
  });
});
