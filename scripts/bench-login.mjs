// Login storm + latency probe for scripts/bench-login (Node 20+, no dependencies).
// Usage: node bench-login.mjs <base-url> <email> <password> <concurrency> <seconds>
const [base, email, password, concurrency, seconds] = process.argv.slice(2);
const C = Number(concurrency);
const durationMs = Number(seconds) * 1000;

const csrfRes = await fetch(`${base}/api/csrf-token`);
const { csrfToken } = await csrfRes.json();
const headers = {
  'content-type': 'application/json',
  cookie: `_csrf=${csrfToken}`,
  'x-csrf-token': csrfToken,
};
const body = JSON.stringify({ email, password });

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function probe(stopAt) {
  const lat = [];
  let errors = 0;
  while (Date.now() < stopAt) {
    const t0 = performance.now();
    try {
      const r = await fetch(`${base}/health`);
      await r.arrayBuffer();
      if (r.status !== 200) errors++;
    } catch { errors++; }
    lat.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  lat.sort((a, b) => a - b);
  return { n: lat.length, errors, p50: pct(lat, 50), p99: pct(lat, 99), max: lat[lat.length - 1] };
}

async function storm(stopAt) {
  let ok = 0, failed = 0;
  const lat = [];
  async function worker() {
    while (Date.now() < stopAt) {
      const t0 = performance.now();
      try {
        const r = await fetch(`${base}/api/auth/login`, { method: 'POST', headers, body });
        await r.arrayBuffer();
        if (r.status === 200) ok++; else failed++;
      } catch { failed++; }
      lat.push(performance.now() - t0);
    }
  }
  await Promise.all(Array.from({ length: C }, worker));
  lat.sort((a, b) => a - b);
  return { ok, failed, p50: pct(lat, 50), p99: pct(lat, 99) };
}

const idle = await probe(Date.now() + 2000);
const start = Date.now();
const stopAt = start + durationMs;
const [s, during] = C > 0 ? await Promise.all([storm(stopAt), probe(stopAt)]) : [{ ok: 0, failed: 0 }, idle];
const elapsed = (Date.now() - start) / 1000;
const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
console.log(
  `logins/s ${(s.ok / elapsed).toFixed(1)} (ok ${s.ok}, failed ${s.failed}, login p50 ${f(s.p50)} ms p99 ${f(s.p99)} ms) | ` +
  `/health idle p50 ${f(idle.p50)} p99 ${f(idle.p99)} ms | during storm p50 ${f(during.p50)} p99 ${f(during.p99)} max ${f(during.max)} ms (${during.n} probes, ${during.errors} errors)`,
);
