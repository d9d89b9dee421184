// End-to-end messaging over the real socket.io-client against `flux serve unified` and
// `flux serve messaging`: CONTRACT §9, §11.3, §11.4, §11.6 and the membership model (ARCHITECTURE §4).
// Run: `npm test` in this directory (FLUX_BIN names the binary to test).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import {
  addTeam,
  addUser,
  api,
  client,
  connected,
  createChannel,
  silent,
  startTarget,
  STEP,
} from "./messaging-helpers.js";
import { sleep, waitFor } from "./helpers.js";

const markAll = (...cs) => cs.forEach((c) => c.mark());
const closeAll = (...cs) => cs.forEach((c) => c?.close());

/** Join `channel` and return the `channel:messages` answer. */
async function join(c, channel, event = "channel:join", ...rest) {
  c.mark();
  c.emit(event, channel, ...rest);
  return c.next("channel:messages");
}

/** Send text as `c` to `channel` and wait until `observer` sees it; returns the Message. */
async function send(c, observer, channel, text) {
  markAll(c, observer);
  c.emit("message:send", { channelId: channel, text });
  return observer.next("message:new", (m) => m.text === text);
}

describe("flux serve unified — messaging end to end", () => {
  let server, alice, bob, carol, channel, otherChannel, carolMessage;

  before(async () => {
    // The bad-input test sends a few hundred events from one socket: lift the per-socket budget here
    // (the flood test runs against the default budget on the messaging target).
    server = await startTarget("unified", { FLUX__SOCKETIO__EVENT_BURST: "100000" });
    alice = addUser(server, "alice", { name: "Alice" });
    bob = addUser(server, "bob", { name: "Bob" });
    carol = addUser(server, "carol", { name: "Carol" });
    addTeam(server, "team-ab", [alice.id, bob.id]);
    addTeam(server, "team-c", [carol.id]);
    channel = await createChannel(server, alice, "team-ab", "general");
    otherChannel = await createChannel(server, carol, "team-c", "private");
    const res = await api(server, "POST", "/api/messages", carol.token, { conversationId: otherChannel, content: "carol's secret" });
    assert.equal(res.status, 201, res.text);
    carolMessage = res.json;
  });

  after(async () => {
    if (server) {
      const { code } = await server.stop();
      assert.equal(code, 0, server.logs());
    }
  });

  it("two users on different transports: join, send, edit, delete, react, unreact, typing", async () => {
    const a = client(server.url, alice, { transports: ["websocket"] });
    const b = client(server.url, bob, { transports: ["polling"] });
    try {
      await Promise.all([connected(a), connected(b)]);
      assert.ok(Array.isArray(await join(a, channel)));
      assert.ok(Array.isArray(await join(b, channel)));

      const m = await send(a, b, channel, "hello bob");
      assert.equal(m.authorId, alice.id);
      assert.equal(m.userEmail, alice.email);
      assert.equal(m.conversationId, channel);
      assert.equal(m.channelId, channel);
      assert.equal(m.content, "hello bob");
      assert.equal(typeof m.seq, "number");
      assert.match(m.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      await b.next("message:received", (x) => x.id === m.id);
      await a.next("message:new", (x) => x.id === m.id); // the sender joined, so it hears its own message

      // Only the author edits.
      assert.equal(await b.error("message:edit", { messageId: m.id, text: "hijacked" }), "Message not found or unauthorized");
      markAll(a, b);
      a.emit("message:edit", { messageId: m.id, text: "hello bob (edited)" });
      const edited = await b.next("message:updated", (x) => x.id === m.id);
      assert.equal(edited.content, "hello bob (edited)");
      assert.equal(edited.isEdited, true);
      assert.equal(edited.seq, m.seq);

      // Legacy object form toggles; the frontend's positional unreact removes.
      markAll(a, b);
      b.emit("message:react", { messageId: m.id, emoji: "👍" });
      const upd = await a.next("message:reactions-updated", (x) => x.messageId === m.id);
      assert.equal(upd.reactions.length, 1);
      assert.equal(upd.reactions[0].user_id, bob.id);
      assert.equal(upd.reactions[0].reaction, "👍");
      assert.equal(upd.reactions[0].user_name, "Bob");
      const added = await a.next("message:reaction-added");
      assert.deepEqual([added.messageId, added.reaction, added.userId], [m.id, "👍", bob.id]);
      markAll(a, b);
      b.emit("message:unreact", m.id, channel, "👍", "forged-user-id");
      const removed = await a.next("message:reactions-updated", (x) => x.messageId === m.id);
      assert.deepEqual(removed.reactions, []);

      // Typing goes to the others in the room, in both vocabularies.
      markAll(a, b);
      a.emit("typing:start", channel);
      assert.deepEqual(await b.next("user:typing"), { userId: alice.id, userEmail: alice.email, channelId: channel });
      const started = await b.next("typing:started");
      assert.equal(started.conversationId, channel);
      assert.equal(started.userId, alice.id);
      a.emit("typing:stop", channel, alice.id);
      assert.deepEqual(await b.next("user:stopped-typing"), { userId: alice.id, channelId: channel });
      await b.next("typing:stopped");
      assert.ok(await silent(a, "user:typing", 200), "the typist does not hear itself");

      // Delete: the bare id to the room; then gone from history.
      assert.equal(await b.error("message:delete", m.id), "Message not found or unauthorized");
      markAll(a, b);
      a.emit("message:delete", m.id);
      assert.equal(await b.next("message:deleted"), m.id);
      const history = await join(b, channel);
      assert.ok(!history.some((x) => x.id === m.id));
    } finally {
      closeAll(a, b);
    }
  });

  it("DM, read receipt and mention notification", async () => {
    const a = client(server.url, alice, { transports: ["polling"] });
    const b = client(server.url, bob, { transports: ["websocket"] });
    const c = client(server.url, carol);
    try {
      await Promise.all([connected(a), connected(b), connected(c)]);
      markAll(a, b, c);
      a.emit("dm:send", { recipientId: bob.id, text: "psst" });
      const dm = await b.next("dm:new");
      const sent = await a.next("dm:sent");
      assert.equal(dm.id, sent.id);
      assert.equal(dm.content, "psst");
      assert.equal(dm.messageType, "dm");
      assert.equal(dm.metadata.recipientId, bob.id);
      assert.ok(await silent(c, "dm:new"));

      // The DM lives in a direct conversation both can read, and only they.
      const hist = await api(server, "GET", `/api/conversations/${dm.conversationId}/messages`, bob.token);
      assert.equal(hist.status, 200);
      assert.equal(hist.json[0].id, dm.id, "a bare array, as the frontend maps it");
      assert.equal((await api(server, "GET", `/api/conversations/${dm.conversationId}/messages`, carol.token)).status, 403);
      const convs = await api(server, "GET", "/api/conversations", bob.token);
      const direct = convs.json.find((x) => x.id === dm.conversationId);
      assert.equal(direct.type, "direct");
      assert.equal(direct.unreadCount, 1);

      markAll(a, b);
      b.emit("message:read", dm.id, dm.conversationId, bob.id);
      const receipt = await a.next("dm:read");
      assert.equal(receipt.messageId, dm.id);
      assert.match(receipt.readAt, /Z$/);
      const status = await a.next("message:status-updated");
      assert.deepEqual([status.messageId, status.status, status.readBy], [dm.id, "read", bob.id]);
      const after = await api(server, "GET", "/api/conversations", bob.token);
      assert.equal(after.json.find((x) => x.id === dm.conversationId).unreadCount, 0);

      // A second DM reuses the same conversation.
      markAll(a, b);
      b.emit("dm:send", { recipientId: alice.id, text: "back" });
      assert.equal((await a.next("dm:new")).conversationId, dm.conversationId);

      // Mentions: members get a notification and an event; a non-member named in `mentions` gets nothing.
      await join(a, channel);
      markAll(a, b, c);
      a.emit("message:send", { conversationId: channel, content: "@bob look", mentions: [bob.id, carol.id], author: { id: "forged" } });
      const note = await b.next("notification:mention");
      assert.equal(note.conversationId, channel);
      assert.equal(note.mentionedBy, alice.id);
      assert.equal(note.content, "@bob look");
      const sentMsg = await a.next("message:new", (x) => x.content === "@bob look");
      assert.equal(sentMsg.authorId, alice.id, "author comes from the token");
      assert.equal(note.messageId, sentMsg.id);
      assert.ok(await silent(c, "notification:mention"));
      const list = await api(server, "GET", "/api/notifications", bob.token);
      assert.equal(list.status, 200);
      assert.equal(typeof list.json[0].isRead, "boolean");
      assert.ok(list.json.some((n) => n.type === "mention" && n.data.messageId === sentMsg.id));
      const none = await api(server, "GET", "/api/notifications", carol.token);
      assert.deepEqual(none.json, []);
      assert.equal(none.headers["x-total-count"], "0");
    } finally {
      closeAll(a, b, c);
    }
  });

  it("presence: online with the first tab, offline only after the last tab closes plus the grace; strangers see nothing", async () => {
    const dave = addUser(server, "dave", { name: "Dave" });
    const erin = addUser(server, "erin", { name: "Erin" });
    addTeam(server, "team-de", [dave.id, erin.id]);
    await createChannel(server, dave, "team-de", "presence");
    const e = client(server.url, erin);
    const c = client(server.url, carol);
    let t1, t2;
    try {
      await Promise.all([connected(e), connected(c)]);
      markAll(e, c);
      t1 = client(server.url, dave, { transports: ["websocket"] });
      await connected(t1);
      const online = await e.next("user:online", (p) => p.userId === dave.id);
      assert.equal(online.status, "online");
      assert.deepEqual(await e.next("user:status", (p) => p.userId === dave.id), { userId: dave.id, status: "online" });
      assert.deepEqual(await t1.next("user:status"), { userId: dave.id, status: "online" });
      t2 = client(server.url, dave, { transports: ["polling"] });
      await connected(t2);

      // users:online: co-members with e-mail; the stranger sees neither dave nor his e-mail.
      e.mark();
      e.emit("users:get-online");
      const list = await e.next("users:online");
      const d = list.find((x) => x.userId === dave.id);
      assert.equal(d.email, dave.email);
      assert.equal(d.status, "online");
      c.mark();
      c.emit("users:get-online");
      const strangers = await c.next("users:online");
      assert.deepEqual(strangers.map((x) => x.userId), [carol.id]);
      assert.ok(!JSON.stringify(strangers).includes(dave.email));

      markAll(e);
      t1.close();
      await sleep(6500);
      assert.ok(e.seen("user:offline").length === 0 && e.seen("user:status", (p) => p.status === "offline").length === 0,
        "one tab still open: no offline");
      const t0 = Date.now();
      t2.close();
      const off = await e.next("user:offline", (p) => p.userId === dave.id, 10_000);
      const waited = Date.now() - t0;
      assert.ok(waited >= 4500, `offline came after ${waited} ms, before the 5 s grace`);
      assert.equal(off.status, "offline");
      assert.deepEqual(await e.next("user:status", (p) => p.status === "offline"), { userId: dave.id, status: "offline" });
      assert.equal(c.seen("user:status", (p) => p.userId === dave.id).length + c.seen("user:online").length + c.seen("user:offline").length, 0,
        "the stranger got dave's presence");
    } finally {
      closeAll(e, c, t1, t2);
    }
  });

  it("a stranger is refused on every event and hears nothing", async () => {
    const a = client(server.url, alice);
    const c = client(server.url, carol, { transports: ["polling"] });
    try {
      await Promise.all([connected(a), connected(c)]);
      await join(a, channel);
      const m = await send(a, a, channel, "members only");
      const notMember = "Not a member of this channel";
      assert.equal(await c.error("channel:join", channel), notMember);
      assert.equal(await c.error("conversation:join", channel, carol.id), notMember);
      assert.equal(await c.error("channel:sync", { channelId: channel, since: 0 }), notMember);
      assert.equal(await c.error("message:send", { channelId: channel, text: "let me in" }), notMember);
      assert.equal(await c.error("message:send", { conversationId: channel, content: "let me in" }), notMember);
      assert.equal(await c.error("typing:start", channel), notMember);
      assert.equal(await c.error("typing:stop", channel), notMember);
      assert.equal(await c.error("message:edit", { messageId: m.id, text: "x" }), "Message not found or unauthorized");
      assert.equal(await c.error("message:delete", m.id), "Message not found or unauthorized");
      assert.equal(await c.error("message:react", { messageId: m.id, emoji: "x" }), "Message not found");
      assert.equal(await c.error("message:react", m.id, channel, "x", carol.id), "Message not found");
      assert.equal(await c.error("message:unreact", m.id, channel, "x", carol.id), "Message not found");
      assert.equal(await c.error("message:read", m.id), "Message not found");
      // REST says the same with 403s.
      assert.equal((await api(server, "GET", `/api/conversations/${channel}/messages`, carol.token)).status, 403);
      assert.equal((await api(server, "POST", `/api/conversations/${channel}/messages`, carol.token, { content: "x" })).status, 403);
      const search = await api(server, "GET", "/api/search/messages?q=members", carol.token);
      assert.equal(search.json.total, 0);
      // Nothing of the channel ever reached the stranger.
      a.mark();
      await send(a, a, channel, "still private");
      assert.ok(await silent(c, "message:new"));
      assert.equal(c.seen("channel:messages").length + c.seen("user:typing").length, 0);
      assert.ok(c.socket.connected);
    } finally {
      closeAll(a, c);
    }
  });

  it("reconnect: channel:sync and REST since recover the messages sent while offline", async () => {
    const a = client(server.url, alice);
    let b = client(server.url, bob);
    try {
      await Promise.all([connected(a), connected(b)]);
      await join(a, channel);
      await join(b, channel);
      const last = await send(a, b, channel, "before the outage");
      b.close();
      const missed = [];
      for (const text of ["missed 1", "missed 2", "missed 3"]) missed.push(await send(a, a, channel, text));
      b = client(server.url, bob, { transports: ["polling"] });
      await connected(b);
      b.mark();
      b.emit("channel:sync", { channelId: channel, since: last.seq });
      const recovered = await b.next("channel:messages");
      assert.deepEqual(recovered.map((x) => x.text), ["missed 1", "missed 2", "missed 3"]);
      assert.deepEqual(recovered.map((x) => x.seq), missed.map((x) => x.seq));
      assert.deepEqual(missed.map((x) => x.seq), [last.seq + 1, last.seq + 2, last.seq + 3]);
      // channel:join with `since` joins and recovers in one step.
      const viaJoin = await join(b, { channelId: channel, since: last.seq + 1 });
      assert.deepEqual(viaJoin.map((x) => x.text), ["missed 2", "missed 3"]);
      const rest = await api(server, "GET", `/api/conversations/${channel}/messages?since=${last.seq}`, bob.token);
      assert.equal(rest.status, 200);
      assert.deepEqual(rest.json.map((x) => x.text), ["missed 1", "missed 2", "missed 3"]);
      assert.equal(rest.headers["x-last-seq"], String(last.seq + 3), "the watermark travels in a header");
    } finally {
      closeAll(a, b);
    }
  });

  it("the frontend vocabulary: user:join, conversation:join/leave, message:send shape, positional react", async () => {
    const a = client(server.url, alice);
    const b = client(server.url, bob, { transports: ["polling", "websocket"] });
    try {
      await Promise.all([connected(a), connected(b)]);
      markAll(a, b);
      a.emit("user:join", { userId: "someone-else", name: "Mallory" });
      assert.ok(await silent(a, "error", 200), "user:join has no reply");
      await join(b, channel, "conversation:join", bob.id);
      markAll(a, b);
      const history = await join(a, channel, "conversation:join", alice.id);
      assert.ok(Array.isArray(history));
      const joined = await b.next("user:joined-conversation");
      assert.equal(joined.conversationId, channel);
      assert.equal(joined.userId, alice.id);
      assert.match(joined.timestamp, /Z$/);

      markAll(a, b);
      a.emit("message:send", { conversationId: channel, content: "fe shape", type: "text", priority: "high", author: { id: bob.id } });
      const msg = await b.next("message:received", (x) => x.content === "fe shape");
      assert.equal(msg.authorId, alice.id);
      assert.equal(msg.priority, "high");
      assert.equal(msg.author.name, "Alice");

      markAll(a, b);
      b.emit("message:react", msg.id, channel, "🔥", bob.id);
      const added = await a.next("message:reaction-added");
      assert.deepEqual([added.messageId, added.reaction, added.userId], [msg.id, "🔥", bob.id]);
      // Positional react adds (it does not toggle): a second one keeps the reaction.
      markAll(a, b);
      b.emit("message:react", msg.id, channel, "🔥", bob.id);
      const again = await a.next("message:reactions-updated", (x) => x.messageId === msg.id);
      assert.equal(again.reactions.length, 1);

      markAll(a, b);
      a.emit("conversation:leave", channel, alice.id);
      const left = await b.next("user:left-conversation");
      assert.equal(left.userId, alice.id);
      await send(b, b, channel, "after leave");
      assert.ok(await silent(a, "message:new", 300, (x) => x.text === "after leave"), "left the room");
    } finally {
      closeAll(a, b);
    }
  });

  it("messages created over REST reach the room like socket-sent ones", async () => {
    const b = client(server.url, bob);
    try {
      await connected(b);
      await join(b, channel);
      b.mark();
      const res = await api(server, "POST", `/api/conversations/${channel}/messages`, alice.token, { content: "from REST" });
      assert.equal(res.status, 201, res.text);
      const m = await b.next("message:new", (x) => x.id === res.json.id);
      assert.equal(m.content, "from REST");
      await b.next("message:received", (x) => x.id === res.json.id);
      const bare = await api(server, "POST", "/messages", alice.token, { conversationId: channel, content: "bare path" });
      assert.equal(bare.status, 201, bare.text);
      await b.next("message:new", (x) => x.id === bare.json.id);
    } finally {
      closeAll(b);
    }
  });

  it("bad input on every event gets an error event, never a disconnect", async () => {
    const a = client(server.url, alice);
    const b = client(server.url, bob);
    try {
      await Promise.all([connected(a), connected(b)]);
      await join(a, channel);
      await join(b, channel);
      const mine = await send(a, b, channel, "target");
      const bad = [null, 42, [1, 2], {}, true];
      const cases = {
        "channel:join": "Channel ID is required",
        "conversation:join": "Channel ID is required",
        "channel:sync": "Channel ID is required",
        "message:send": "Channel ID and either text or file are required",
        "message:edit": "Message ID and text are required",
        "message:delete": "Message ID is required",
        "message:react": "Message ID and emoji are required",
        "message:unreact": "Message ID and emoji are required",
        "typing:start": "Channel ID is required",
        "typing:stop": "Channel ID is required",
        "dm:send": "Recipient and text are required",
        "message:read": "Message ID is required",
      };
      for (const [event, expected] of Object.entries(cases)) {
        for (const value of bad) {
          assert.equal(await a.error(event, value), expected, `${event} ${JSON.stringify(value)}`);
        }
      }
      assert.equal(await a.error("message:send"), "Channel ID and either text or file are required");
      // Unknown ids.
      assert.equal(await a.error("channel:join", "no-such-channel"), "Channel not found");
      assert.equal(await a.error("message:send", { channelId: "no-such-channel", text: "x" }), "Channel not found");
      assert.equal(await a.error("message:edit", { messageId: "no-such-message", text: "x" }), "Message not found or unauthorized");
      assert.equal(await a.error("message:delete", "no-such-message"), "Message not found or unauthorized");
      assert.equal(await a.error("message:react", { messageId: "no-such-message", emoji: "x" }), "Message not found");
      assert.equal(await a.error("message:read", "no-such-message"), "Message not found");
      assert.equal(await a.error("dm:send", { recipientId: "no-such-user", text: "x" }), "Recipient not found");
      assert.equal(await a.error("message:send", { channelId: channel, text: "re", replyTo: "no-such-message" }), "Reply target not found");
      // Another conversation's message id.
      assert.equal(await a.error("message:edit", { messageId: carolMessage.id, text: "x" }), "Message not found or unauthorized");
      assert.equal(await a.error("message:delete", carolMessage.id), "Message not found or unauthorized");
      assert.equal(await a.error("message:react", { messageId: carolMessage.id, emoji: "x" }), "Message not found");
      assert.equal(await a.error("message:read", carolMessage.id), "Message not found");
      assert.equal(await a.error("message:send", { channelId: channel, text: "re", replyTo: carolMessage.id }), "Reply target not found");
      // Text bounds: 10,000 characters pass, 10,001 and ~1 MB are refused.
      const tooLong = "Message text must be at most 10000 characters";
      markAll(a, b);
      a.emit("message:send", { channelId: channel, text: "é".repeat(10_000) });
      await b.next("message:new", (x) => x.text.length === 10_000);
      assert.equal(await a.error("message:send", { channelId: channel, text: "x".repeat(10_001) }), tooLong);
      assert.equal(await a.error("message:send", { channelId: channel, text: "x".repeat(990_000) }), tooLong);
      assert.equal(await a.error("message:edit", { messageId: mine.id, text: "x".repeat(10_001) }), tooLong);
      assert.equal(await a.error("dm:send", { recipientId: bob.id, text: "x".repeat(10_001) }), tooLong);
      assert.equal(await a.error("message:react", { messageId: mine.id, emoji: "x".repeat(51) }), "Reaction must be 1 to 50 characters");
      assert.ok(a.socket.connected && b.socket.connected);

      // Over the 1 MB frame limit: only the offender's connection ends.
      let reason = null;
      a.socket.on("disconnect", (r) => (reason = r));
      a.emit("message:send", { channelId: channel, text: "x".repeat(1_100_000) });
      await waitFor(() => reason, { timeout: STEP, message: "the oversize frame closes its own connection" });
      const still = await send(b, b, channel, "bob is fine");
      assert.equal(still.text, "bob is fine");
      assert.ok(b.socket.connected);
    } finally {
      closeAll(a, b);
    }
  });
});

describe("flux serve messaging — the same handlers on / and /messaging", () => {
  let server, alice, bob, channel;

  before(async () => {
    server = await startTarget("messaging");
    alice = addUser(server, "alice");
    bob = addUser(server, "bob");
    addTeam(server, "team", [alice.id, bob.id]);
    channel = await createChannel(server, alice, "team");
  });

  after(async () => {
    if (server) await server.stop();
  });

  it("a flood of events is rate limited per socket without disconnecting anyone", async () => {
    const a = client(server.url, alice);
    const b = client(server.url, bob);
    try {
      await Promise.all([connected(a), connected(b)]);
      await join(b, channel);
      markAll(a, b);
      for (let i = 0; i < 300; i++) a.emit("typing:start", channel);
      await a.next("error", (e) => e.message === "Too many events, slow down");
      await b.next("user:typing");
      await sleep(500);
      const typed = b.seen("user:typing").length;
      assert.ok(typed > 0 && typed < 300, `typing relayed ${typed} of 300`);
      assert.ok(a.socket.connected);
      await send(b, b, channel, "bob unaffected");
      await sleep(1500);
      await send(a, b, channel, "alice recovered");
    } finally {
      closeAll(a, b);
    }
  });
  it("root namespace and /messaging share rooms; REST answers under /api with the M wording", async () => {
    const root = client(server.url, alice, { ns: "/" });
    const nsp = client(server.url, bob, { ns: "/messaging", transports: ["polling"] });
    try {
      await Promise.all([connected(root), connected(nsp)]);
      await join(root, channel);
      await join(nsp, channel);
      const m = await send(root, nsp, channel, "from the root namespace");
      assert.equal(m.authorId, alice.id);
      await send(nsp, root, channel, "from /messaging");
      markAll(root, nsp);
      const res = await api(server, "POST", "/api/messages", bob.token, { conversationId: channel, content: "REST on 3002" });
      assert.equal(res.status, 201, res.text);
      await root.next("message:new", (x) => x.id === res.json.id);
      const anon = client(server.url, null, { ns: "/" });
      const err = await new Promise((resolve) => anon.socket.once("connect_error", resolve));
      assert.equal(err.message, "Authentication required");
      anon.close();
      const noToken = await api(server, "GET", "/api/conversations", null);
      assert.deepEqual([noToken.status, noToken.json], [401, { message: "Access token required" }]);
    } finally {
      closeAll(root, nsp);
    }
  });
});
