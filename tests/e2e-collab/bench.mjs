// Load generator of scripts/bench-collab: N y-websocket providers in one room, each making M
// updates at once; reports the time until every document holds all N×M items, and the server's
// CPU time and peak RSS (from /proc, so Linux only). Usage:
//   node bench.mjs <ws-base-url> <server-pid> <token> [clients=50] [updates=20]

import { readFileSync } from "node:fs";

import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";

const [base, pidArg, tok, clientsArg = "50", updatesArg = "20"] = process.argv.slice(2);
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

const room = `bench-${Date.now()}`;
process.setMaxListeners(CLIENTS + 10); // y-websocket adds a process exit listener per provider
const peers = [];
for (let i = 0; i < CLIENTS; i++) {
  const doc = new Y.Doc();
  const p = new WebsocketProvider(base, room, doc, { WebSocketPolyfill: WebSocket, disableBc: true, params: { token: tok } });
  peers.push({ doc, p, list: doc.getArray("items") });
}
const t0 = Date.now();
while (!peers.every((x) => x.p.synced)) {
  if (Date.now() - t0 > 30_000) throw new Error("providers did not sync within 30 s");
  await sleep(5);
}
await sleep(200);
const rssBefore = status(pid, "VmRSS");
const cpuBefore = cpuMs(pid);
const total = CLIENTS * UPDATES;

const start = process.hrtime.bigint();
for (let u = 0; u < UPDATES; u++) {
  for (let i = 0; i < CLIENTS; i++) peers[i].list.push([`${i}:${u}`]);
}
let converged;
for (;;) {
  if (peers.every((x) => x.list.length === total)) {
    converged = Number(process.hrtime.bigint() - start) / 1e6;
    break;
  }
  if (Number(process.hrtime.bigint() - start) > 60e9) throw new Error("no convergence within 60 s");
  await new Promise((r) => setImmediate(r));
}
const cpuAfter = cpuMs(pid);
const same = peers.every((x) => JSON.stringify(x.list.toArray()) === JSON.stringify(peers[0].list.toArray()));
const result = {
  clients: CLIENTS,
  updatesPerClient: UPDATES,
  convergenceMs: Math.round(converged),
  identicalDocuments: same,
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
process.exit(same ? 0 : 1);
