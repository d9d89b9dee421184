// Issue 10 §1: a Socket.IO socket's id must never let anyone but its owner act on its Engine.IO session.
// socketioxide gives a socket the id of its Engine.IO session (socket.id === engine sid), so with a known
// id a stranger could post into a polling session, or upgrade it to a websocket of their own and receive
// its events. Two real socket.io-client users: the victim on polling, the attacker who learnt the victim's
// socket id (socket.id stands in for the leak, which users:online no longer carries).
// Run: `npm test` in this directory (FLUX_BIN names the binary to test).

import assert from "node:assert/strict";
import { after, before, beforeEach, afterEach, describe, it } from "node:test";

import WebSocket from "ws";

import { addTeam, addUser, api, client, connected, createChannel, silent, startTarget } from "./messaging-helpers.js";
import { httpRequest, sleep, withTimeout } from "./helpers.js";

describe("a known socket id opens nobody's session", () => {
  let server, victimUser, attackerUser, channel;
  let victim, attacker;

  before(async () => {
    server = await startTarget("unified");
    victimUser = addUser(server, "victim", { name: "Victim" });
    attackerUser = addUser(server, "attacker", { name: "Attacker" });
    addTeam(server, "team-victim", [victimUser.id]);
    channel = await createChannel(server, victimUser, "team-victim", "private");
  });

  after(async () => {
    if (server) {
      const { code } = await server.stop();
      assert.equal(code, 0, server.logs());
    }
  });

  beforeEach(async () => {
    victim = client(server.url, victimUser, { transports: ["polling"] });
    attacker = client(server.url, attackerUser, { transports: ["websocket"] });
    await Promise.all([connected(victim), connected(attacker)]);
    victim.mark();
    victim.emit("channel:join", channel);
    await victim.next("channel:messages");
  });

  afterEach(() => {
    victim?.close();
    attacker?.close();
  });

  /** The victim's session still works: it sends and hears its own message. */
  async function victimStillWorks(text) {
    victim.mark();
    victim.emit("message:send", { channelId: channel, text });
    const m = await victim.next("message:new", (x) => x.text === text);
    assert.equal(m.authorId, victimUser.id);
  }

  async function stored() {
    const res = await api(server, "GET", `/api/conversations/${channel}/messages`, victimUser.token);
    assert.equal(res.status, 200, res.text);
    return res.json.map((m) => m.content);
  }

  it("users:online tells a co-member nothing about the victim's socket or session", async () => {
    // Anyone becomes a co-member of anyone through a DM.
    attacker.mark();
    attacker.emit("dm:send", { recipientId: victimUser.id, text: "hello" });
    await attacker.next("dm:sent");
    attacker.mark();
    attacker.emit("users:get-online");
    const list = await attacker.next("users:online");
    const entry = list.find((x) => x.userId === victimUser.id);
    assert.ok(entry, `the victim is listed: ${JSON.stringify(list)}`);
    assert.equal(entry.socketId, undefined);
    const wire = JSON.stringify(list);
    const rawId = victim.socket.id;
    const engineId = victim.socket.io.engine.id;
    assert.ok(!wire.includes(rawId), `users:online carries the victim's socket id: ${wire}`);
    assert.ok(!wire.includes(engineId), `users:online carries the victim's engine id: ${wire}`);
    // Nor does anything else the attacker received.
    assert.ok(!JSON.stringify(attacker.events).includes(rawId), JSON.stringify(attacker.events));
  });

  it("a polling POST with the victim's socket id is refused, stores and relays nothing", async () => {
    const rawId = victim.socket.id;
    victim.mark();
    const forged = [rawId, `${rawId}.AAAAAAAAAAAAAAAAAAAAAA`, `${rawId}.`];
    for (const sid of forged) {
      const text = `forged over polling as ${sid}`;
      const res = await httpRequest(`${server.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`, {
        method: "POST",
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
        body: `42/messaging,${JSON.stringify(["message:send", { channelId: channel, text }])}`,
      });
      assert.equal(res.status, 400, `POST with sid ${sid} → ${res.status} ${res.text}`);
      assert.deepEqual(res.json, { code: 1, message: "Session ID unknown" });
    }
    // A polling GET with it neither steals the victim's packets nor closes its session.
    const get = await httpRequest(`${server.url}/socket.io/?EIO=4&transport=polling&sid=${rawId}`);
    assert.equal(get.status, 400, get.text);
    assert.ok(await silent(victim, "message:new", 500));
    const texts = await stored();
    assert.ok(!texts.some((t) => t.startsWith("forged")), `stored as the victim's: ${JSON.stringify(texts)}`);
    await victimStillWorks("still mine after the POST");
    assert.equal(victim.socket.io.engine.transport.name, "polling");
    assert.notEqual(victim.socket.io.engine.id, rawId, "the engine id only the owner uses is not the public socket id");
  });

  it("a websocket upgrade with the victim's socket id is refused and hears none of the victim's events", async () => {
    const rawId = victim.socket.id;
    const frames = [];
    const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket&sid=${rawId}`);
    ws.on("message", (data) => frames.push(data.toString()));
    const outcome = await withTimeout(
      new Promise((resolve) => {
        ws.once("open", () => resolve({ opened: true }));
        ws.once("unexpected-response", (_req, res) => resolve({ status: res.statusCode }));
        ws.once("error", (e) => resolve({ error: e.message }));
      }),
      5000,
      "upgrade outcome",
    );
    if (outcome.opened) {
      // Speak the upgrade as engine.io-client does, so a hijack (if the server allowed one) completes.
      ws.send("2probe");
      await sleep(200);
      ws.send("5");
      await sleep(200);
    }
    // Something the victim would hear: a message in its channel, sent over REST.
    const res = await api(server, "POST", "/api/messages", victimUser.token, { conversationId: channel, content: "for the victim only" });
    assert.equal(res.status, 201, res.text);
    await sleep(500);
    ws.terminate();
    assert.ok(!frames.some((f) => f.includes("for the victim only")), `the attacker heard: ${JSON.stringify(frames)}`);
    assert.deepEqual(outcome, { status: 400 }, `the upgrade was not refused (frames: ${JSON.stringify(frames)})`);
    await victim.next("message:new", (m) => m.text === "for the victim only");
    await victimStillWorks("still mine after the upgrade attempt");
    assert.equal(victim.socket.io.engine.transport.name, "polling");
  });

  it("a websocket-first session's id opens nothing either", async () => {
    const rawId = attacker.socket.id; // any websocket-first socket; here the "attacker" is the victim
    for (const method of ["GET", "POST"]) {
      const res = await httpRequest(`${server.url}/socket.io/?EIO=4&transport=polling&sid=${rawId}`, {
        method,
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
        body: method === "POST" ? `42/messaging,["echo","forged"]` : undefined,
      });
      assert.equal(res.status, 400, `${method} → ${res.status} ${res.text}`);
    }
    const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket&sid=${rawId}`);
    const outcome = await withTimeout(
      new Promise((resolve) => {
        ws.once("open", () => resolve({ opened: true }));
        ws.once("unexpected-response", (_req, res) => resolve({ status: res.statusCode }));
        ws.once("error", (e) => resolve({ error: e.message }));
      }),
      5000,
      "upgrade outcome",
    );
    ws.terminate();
    assert.deepEqual(outcome, { status: 400 });
    attacker.mark();
    attacker.emit("echo", "still connected");
    assert.equal(await attacker.next("echo"), "still connected");
    assert.ok(attacker.seen("echo", (x) => x === "forged").length === 0);
  });

  it("the owner's own upgrade with its sealed id still works", async () => {
    const owner = client(server.url, victimUser, { transports: ["polling", "websocket"] });
    try {
      await connected(owner);
      await withTimeout(
        new Promise((resolve) => {
          if (owner.socket.io.engine.transport.name === "websocket") resolve();
          else owner.socket.io.engine.once("upgrade", resolve);
        }),
        5000,
        "upgrade to websocket",
      );
      owner.mark();
      owner.emit("echo", "after upgrade");
      assert.equal(await owner.next("echo"), "after upgrade");
    } finally {
      owner.close();
    }
  });
});
