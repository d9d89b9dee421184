// The original collaboration service's JSON protocol (CONTRACT §12) spoken by raw `ws` clients the way
// the original's clients behave: they edit as soon as the socket is open, send no frame of their own
// before that and none to help the server, and may stay silent for good. Whatever order peers speak in,
// JSON and y-websocket peers must converge, and presence must reach peers that never spoke.
// Run: FLUX_BIN=/path/to/flux npm test

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { destroy, jsonPeer, provider, sleep, startCollab, token, waitFor } from "./helpers.js";

const room = (what) => `${what}-${randomUUID().slice(0, 8)}`;
const text = (doc) => doc.getText("t").toString();

describe("the original JSON protocol", () => {
  let server;
  before(async () => {
    server = await startCollab();
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  test("a peer that has not spoken yet receives the updates sent before it speaks", async () => {
    const r = room("silent");
    const a = await jsonPeer(server, r);
    const b = await jsonPeer(server, r);
    // A edits right after open; B has sent nothing and sends nothing.
    a.doc.getText("t").insert(0, "from A");
    await waitFor(() => text(b.doc) === "from A", { message: "A's edit at the silent B" });
    // B speaks later; both end with both edits.
    b.doc.getText("t").insert(text(b.doc).length, " and B");
    await waitFor(() => text(a.doc) === "from A and B" && text(b.doc) === "from A and B", {
      message: "A and B converge",
    });
    assert.equal(b.binary, 0, "a JSON peer gets no binary frame");
    assert.equal(a.binary, 0, "a JSON peer gets no binary frame");
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
    a.close();
    b.close();
  });

  test("each peer gets sync-init once and each update once", async () => {
    const r = room("once");
    const a = await jsonPeer(server, r);
    const b = await jsonPeer(server, r);
    const c = await jsonPeer(server, r);
    for (let i = 0; i < 5; i++) a.doc.getArray("l").push([i]);
    await waitFor(() => b.doc.getArray("l").length === 5 && c.doc.getArray("l").length === 5, {
      message: "five updates at b and c",
    });
    await sleep(1500); // past the server's wait for a silent peer's first frame
    for (const p of [a, b, c]) assert.equal(p.inits, 1, "sync-init once");
    // The silent peers may get the updates made before they were known merged into one frame,
    // never twice.
    for (const p of [b, c]) assert.ok(p.updates >= 1 && p.updates <= 5, `${p.updates} sync-update frames`);
    assert.equal(a.updates, 0, "no echo to the sender");
    for (const p of [a, b, c]) p.close();
  });

  test("presence reaches peers that never spoke", async () => {
    const r = room("presence");
    const aUser = randomUUID();
    const a = await jsonPeer(server, r, { tok: token(aUser) });
    const b = await jsonPeer(server, r);
    const c = await jsonPeer(server, r);
    a.ws.send(JSON.stringify({ type: "presence", data: { cursor: { x: 1, y: 2 } } }));
    for (const p of [b, c]) {
      await waitFor(() => p.presence.length === 1, { message: "presence at a silent peer" });
      assert.deepEqual(p.presence[0], {
        type: "presence",
        userId: aUser,
        userName: `${aUser}@example.com`,
        data: { cursor: { x: 1, y: 2 } },
      });
    }
    assert.equal(a.presence.length, 0, "no echo to the sender");
    for (const p of [a, b, c]) p.close();
  });

  test("JSON and y-websocket peers converge whatever the order in which they speak", async () => {
    const r = room("mixed");
    // A JSON peer edits before anyone else is there.
    const early = await jsonPeer(server, r);
    early.doc.getText("t").insert(0, "1");
    await sleep(50);
    // A provider joins, and two JSON peers: one that edits at once, one that never speaks.
    const p = await provider(server, r);
    const talker = await jsonPeer(server, r, { requestOnInit: true });
    const silent = await jsonPeer(server, r, { requestOnInit: true });
    talker.doc.getMap("m").set("talker", true);
    p.doc.getMap("m").set("provider", true);
    early.doc.getMap("m").set("early", true);
    const want = JSON.stringify({ early: true, provider: true, talker: true });
    const all = [early, p, talker, silent];
    const keys = (x) => JSON.stringify(Object.fromEntries(Object.entries(x.doc.getMap("m").toJSON()).sort()));
    await waitFor(() => all.every((x) => keys(x) === want && text(x.doc) === "1"), {
      timeout: 10_000,
      message: "all four converge",
    });
    // The silent one finally speaks, and everyone sees it.
    silent.doc.getText("t").insert(1, "2");
    await waitFor(() => all.every((x) => text(x.doc) === "12"), { message: "the silent peer's edit everywhere" });
    for (const x of [early, talker, silent]) {
      assert.equal(x.binary, 0, "a JSON peer gets no binary frame");
      assert.deepEqual(x.errors, []);
    }
    for (const x of [early, talker, silent]) x.close();
    destroy(p);
  });

  test("50 JSON peers × 20 updates converge", async () => {
    const r = room("fifty");
    const peers = [];
    for (let i = 0; i < 50; i++) peers.push(await jsonPeer(server, r));
    for (let u = 0; u < 20; u++) {
      for (let i = 0; i < 50; i++) peers[i].doc.getArray("items").push([`${i}:${u}`]);
    }
    const started = Date.now();
    await waitFor(() => peers.every((x) => x.doc.getArray("items").length === 1000), {
      timeout: 30_000,
      message: "1000 items at every peer",
    }).catch((e) => {
      const behind = peers
        .map((x, i) => ({ i, items: x.doc.getArray("items").length, inits: x.inits, updates: x.updates, closed: x.closedWith }))
        .filter((x) => x.items !== 1000);
      throw new Error(`${e.message}; peers behind: ${JSON.stringify(behind)}`);
    });
    console.log(`50 JSON peers converged ${Date.now() - started} ms after the last edit`);
    const first = JSON.stringify(peers[0].doc.getArray("items").toArray());
    for (const x of peers) assert.equal(JSON.stringify(x.doc.getArray("items").toArray()), first);
    for (const x of peers) x.close();
  });
});
