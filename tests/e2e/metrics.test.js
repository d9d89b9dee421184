// The /auth metrics stream (alias /performance, CONTRACT §11.5) and Prometheus /metrics, against a
// real `flux serve unified`, with the real socket.io-client.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { io } from "socket.io-client";

import { httpRequest, mintAccessToken, nextEvent, startServer, withTimeout } from "./helpers.js";

const STEP = 5000;
const FIELDS = [
  "cpu_usage",
  "memory_usage",
  "active_connections",
  "message_throughput",
  "api_response_time",
  "database_connections",
  "database_query_time",
  "database_slow_queries",
  "error_rate",
];

function open(url, opts = {}) {
  return io(url, { reconnection: false, forceNew: true, timeout: STEP, ...opts });
}

function outcome(socket) {
  return withTimeout(
    new Promise((resolve) => {
      socket.once("connect", () => resolve({ ok: true }));
      socket.once("connect_error", (err) => resolve({ ok: false, message: err.message }));
    }),
    STEP,
    `handshake on ${socket.nsp}`,
  );
}

function assertMetrics(m) {
  assert.match(m.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  for (const f of FIELDS) assert.equal(typeof m[f], "number", `${f} is a number: ${JSON.stringify(m)}`);
}

describe("metrics stream on /auth and /performance", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  for (const ns of ["/auth", "/performance"]) {
    it(`${ns}: refused without a token, with a bad token, and for a non-admin`, async () => {
      const cases = [
        [{}, "Authentication required"],
        [{ auth: { token: "garbage" } }, "Invalid token"],
        [{ auth: { token: mintAccessToken(server.secret, { userType: "client" }) } }, "Admin access required"],
      ];
      for (const [opts, message] of cases) {
        const s = open(`${server.url}${ns}`, opts);
        try {
          assert.deepEqual(await outcome(s), { ok: false, message });
        } finally {
          s.close();
        }
      }
    });

    it(`${ns}: an admin gets system_metrics on connect, on request_metrics (with database_metrics) and every 5 s`, async () => {
      const admin = mintAccessToken(server.secret, { id: "admin-1", userType: "admin" });
      const s = open(`${server.url}${ns}`, { auth: { token: admin }, transports: ["websocket"] });
      try {
        const greeting = nextEvent(s, "system_metrics", STEP);
        assert.deepEqual(await outcome(s), { ok: true });
        const first = await greeting;
        assertMetrics(first);
        assert.ok(first.active_connections >= 1, "counts this socket");

        const again = nextEvent(s, "system_metrics", STEP);
        const tables = nextEvent(s, "database_metrics", STEP);
        s.emit("request_metrics");
        assertMetrics(await again);
        const rows = await tables;
        assert.ok(Array.isArray(rows));
        const users = rows.find((r) => r.table_name === "users");
        assert.equal(typeof users.row_count, "number");

        // The periodic push (every 5 s) arrives without asking.
        const pushed = await nextEvent(s, "system_metrics", 7000);
        assertMetrics(pushed);
      } finally {
        s.close();
      }
    });
  }

  it("GET /metrics is Prometheus text with per-route counts", async () => {
    await httpRequest(`${server.url}/health`);
    await httpRequest(`${server.url}/api/nothing-here`);
    const res = await httpRequest(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers["content-type"], /openmetrics-text|text\/plain/);
    assert.match(res.text, /flux_http_requests_total\{service="unified-backend",method="GET",route="\/health",status="200"\} \d+/);
    assert.match(res.text, /route="unmatched",status="404"/);
    assert.match(res.text, /flux_http_request_duration_seconds_bucket/);
    assert.match(res.text, /flux_process_resident_memory_bytes \d+/);
    assert.match(res.text, /flux_socketio_sockets\{service="unified-backend",namespace="\/messaging"\} \d+/);
    assert.match(res.text, /flux_db_pool_connections_max \d+/);
  });
});

describe("monitor.public opens the metrics stream", () => {
  let server;
  before(async () => {
    server = await startServer({ env: { FLUX__MONITOR__PUBLIC: "true" } });
  });
  after(async () => {
    await server?.stop();
  });

  it("/performance accepts a socket without a token", async () => {
    const s = open(`${server.url}/performance`);
    try {
      const greeting = nextEvent(s, "system_metrics", STEP);
      assert.deepEqual(await outcome(s), { ok: true });
      assertMetrics(await greeting);
    } finally {
      s.close();
    }
  });
});
