// Load generator of scripts/bench-collab: N clients in one room, each making M updates at once;
// reports the time until every document holds all N×M items, and the server's CPU time and peak
// RSS (from /proc, so Linux only). The clients speak either the y-websocket protocol (stock
// WebsocketProvider) or the original service's JSON protocol (raw `ws` sockets that send
// `sync-update` frames and apply the ones they receive, nothing else). Usage:
//   node bench.mjs <ws-base-url> <server-pid> <token> [clients=50] [updates=20] [y|json]

import { readFileSync } from "node:fs";

import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";

const [base, pidArg, tok, clientsArg = "50", updatesArg = "20", protocol = "y"] = process.argv.slice(2);
const pid = Number(pidArg);
const CLIENTS = Number(clientsArg);
const UPDATES = Number(updatesArg);
const TICKS = 100; // USER_HZ on Linux

function cpuMs(p) {
  const stat = readFileSync(`/proc/${p}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS;
}
function status(p, key) {
  const line = readFileSync(`/proc/${p}/status`, "utf8").split("\n").find((l) => l.startsWith(key + ":"));
  return line ? Number(line.split(/\s+/)[1]) / 1024 : NaN; // MB
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (protocol !== "y" && protocol !== "json") throw new Error(`protocol must be y or json, not ${protocol}`);
const room = `bench-${protocol}-${Date.now()}`;
process.setMaxListeners(CLIENTS + 10); // y-websocket adds a process exit listener per provider

// Frames the clients receive during the measured burst (after the initial sync).
let framesIn = 0;
class CountingWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.on("message", () => (framesIn += 1));
  }
}

/** A client of the original JSON protocol: edits go out as `sync-update`, received ones are applied. */
function jsonClient(doc) {
  const ws = new CountingWebSocket(`${base}/${room}?token=${tok}`);
  const client = { ws, synced: false, destroy: () => ws.close() };
  ws.on("open", () => (client.synced = true));
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    const msg = JSON.parse(data.toString());
    if (msg.type === "sync-update") Y.applyUpdate(doc, Uint8Array.from(msg.update), "server");
  });
  doc.on("update", (update, origin) => {
    if (origin !== "server") ws.send(JSON.stringify({ type: "sync-update", update: Array.from(update) }));
  });
  return client;
}

const peers = [];
for (let i = 0; i < CLIENTS; i++) {
  const doc = new Y.Doc();
  const p =
    protocol === "y"
      ? new WebsocketProvider(base, room, doc, { WebSocketPolyfill: CountingWebSocket, disableBc: true, params: { token: tok } })
      : jsonClient(doc);
  peers.push({ doc, p, list: doc.getArray("items") });
}
const t0 = Date.now();
while (!peers.every((x) => x.p.synced)) {
  if (Date.now() - t0 > 30_000) throw new Error("clients did not sync within 30 s");
  await sleep(5);
}
await sleep(200);
const rssBefore = status(pid, "VmRSS");
const cpuBefore = cpuMs(pid);
const total = CLIENTS * UPDATES;

framesIn = 0;
const start = process.hrtime.bigint();
for (let u = 0; u < UPDATES; u++) {
  for (let i = 0; i < CLIENTS; i++) peers[i].list.push([`${i}:${u}`]);
}
let converged = null;
for (;;) {
  if (peers.every((x) => x.list.length === total)) {
    converged = Number(process.hrtime.bigint() - start) / 1e6;
    break;
  }
  if (Number(process.hrtime.bigint() - start) > 20e9) break; // reported as not converged
  await new Promise((r) => setImmediate(r));
}
const cpuAfter = cpuMs(pid);
const framesPerClient = framesIn / CLIENTS;
const same = peers.every((x) => JSON.stringify(x.list.toArray()) === JSON.stringify(peers[0].list.toArray()));
const result = {
  protocol: protocol === "y" ? "y-websocket" : "original JSON",
  clients: CLIENTS,
  updatesPerClient: UPDATES,
  convergenceMs: converged === null ? null : Math.round(converged),
  // Without convergence: how far the worst-off client got within 20 s.
  fewestItems: Math.min(...peers.map((x) => x.list.length)),
  identicalDocuments: same,
  // Frames each client received from the start of the burst to convergence (≤ (N−1)×M updates).
  framesPerClient: Number(framesPerClient.toFixed(1)),
  serverCpuMs: Math.round(cpuAfter - cpuBefore),
  serverRssBeforeMB: Number(rssBefore.toFixed(1)),
  serverRssAfterMB: Number(status(pid, "VmRSS").toFixed(1)),
  serverPeakRssMB: Number(status(pid, "VmHWM").toFixed(1)),
  // RSS split after the run: anonymous (heap, stacks) vs file-backed (mostly the binary's pages).
  serverRssAnonAfterMB: Number(status(pid, "RssAnon").toFixed(1)),
  serverRssFileAfterMB: Number(status(pid, "RssFile").toFixed(1)),
  generatorCpuMs: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000),
};
console.log(JSON.stringify(result, null, 2));
for (const x of peers) x.p.destroy();
process.exit(same && converged !== null ? 0 : 1);
