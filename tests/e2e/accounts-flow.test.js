// The frontend's account flow with a real HTTP client (node's fetch) against the real binary, as
// apiService.ts does it: CSRF token first, then signup, me, profile, password change, login, an
// organization and a team, an invite, a project, a file upload/list/download/delete, and logout.
// Run against `flux serve unified` (bare paths, as behind the production ingress, and /api paths)
// and against the rollback `flux serve auth` (/api paths).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { startServer } from "./helpers.js";

/** A tiny cookie-keeping client, like a browser tab with `credentials: "include"`. */
function browser(base) {
  const jar = new Map();
  return async function request(method, path, { json, form, token, csrf } = {}) {
    const headers = { Origin: "http://localhost:5173" };
    if (jar.size) headers.Cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
    if (token) headers.Authorization = `Bearer ${token}`;
    if (csrf) headers["X-CSRF-Token"] = csrf;
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    const res = await fetch(`${base}${path}`, { method, headers, body, redirect: "manual" });
    for (const c of res.headers.getSetCookie?.() ?? []) {
      const [pair] = c.split(";");
      const i = pair.indexOf("=");
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
    const type = res.headers.get("content-type") ?? "";
    const data = type.includes("application/json") ? await res.json() : Buffer.from(await res.arrayBuffer());
    return { status: res.status, headers: res.headers, data };
  };
}

const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
    "1f15c4890000000d49444154789c63f80f00000101000518d84e0000000049454e44ae426082",
  "hex",
);

async function frontendFlow(server, prefix) {
  const api = browser(server.url);
  const p = (path) => `${prefix}${path}`;
  const email = `Ada.${Date.now()}@Example.com`;

  // csrf-token → signup (the SPA sends the token it was given, and the cookie rides along)
  const csrf = await api("GET", p("/csrf-token"));
  assert.equal(csrf.status, 200);
  assert.match(csrf.data.csrfToken, /^[0-9a-f]{64}$/);
  const token0 = csrf.data.csrfToken;

  const refused = await api("POST", p("/auth/signup"), {
    json: { email, password: "Secret123", name: "Ada", userType: "admin" },
    csrf: token0,
  });
  assert.equal(refused.status, 400, "no self-registration as admin");

  const signup = await api("POST", p("/auth/signup"), {
    json: { email, password: "Secret123", name: "Ada Lovelace", userType: "designer" },
    csrf: token0,
  });
  assert.equal(signup.status, 200, JSON.stringify(signup.data));
  assert.equal(signup.data.token, signup.data.accessToken);
  assert.equal(signup.data.user.email, email.toLowerCase(), "e-mails are case-folded");
  assert.equal(signup.data.user.userType, "designer");
  assert.ok(!("password" in signup.data.user) && !("googleId" in signup.data.user));
  let token = signup.data.token;

  const me = await api("GET", p("/auth/me"), { token });
  assert.equal(me.status, 200);
  assert.equal(me.data.name, "Ada Lovelace");

  const profile = await api("PATCH", p("/users/me"), { token, json: { name: "Ada King" } });
  assert.equal(profile.status, 200, JSON.stringify(profile.data));
  assert.equal(profile.data.user.name, "Ada King");

  const change = await api("POST", p("/auth/change-password"), {
    token,
    json: { currentPassword: "Secret123", newPassword: "Better456" },
  });
  assert.equal(change.status, 200, JSON.stringify(change.data));
  assert.equal(change.data.success, true);

  const old = await api("POST", p("/auth/login"), { json: { email, password: "Secret123" }, csrf: token0 });
  assert.equal(old.status, 401);
  assert.deepEqual(old.data, { message: "Invalid email or password" });
  const login = await api("POST", p("/auth/login"), { json: { email, password: "Better456" }, csrf: token0 });
  assert.equal(login.status, 200, JSON.stringify(login.data));
  token = login.data.token;
  const refreshToken = login.data.refreshToken;
  assert.match(refreshToken, /^[0-9a-f]{128}$/);

  const org = await api("POST", p("/organizations"), { token, json: { name: "Studio", description: "d" } });
  assert.equal(org.status, 201, JSON.stringify(org.data));
  assert.equal(org.data.organization.role, "admin");
  const team = await api("POST", p("/teams"), { token, json: { name: "Design" } });
  assert.equal(team.status, 200, JSON.stringify(team.data));
  const teamId = team.data.team.id;
  assert.equal(team.data.team.members[0].role, "owner");
  const teams = await api("GET", p("/teams"), { token });
  assert.ok(teams.data.teams.some((t) => t.id === teamId));

  const invite = await api("POST", p(`/teams/${teamId}/invite`), {
    token,
    json: { email: "Grace@Example.com", role: "member" },
  });
  assert.equal(invite.status, 200, JSON.stringify(invite.data));
  assert.equal(invite.data.invite.status, "pending");
  const ownerInvite = await api("POST", p(`/teams/${teamId}/invite`), {
    token,
    json: { email: "mallory@example.com", role: "owner" },
  });
  assert.equal(ownerInvite.status, 400, "invites cannot mint owners");

  const project = await api("POST", p("/projects"), { token, json: { name: "Poster", teamId } });
  assert.equal(project.status, 200, JSON.stringify(project.data));
  const projectId = project.data.project.id;

  const form = new FormData();
  form.append("projectId", projectId);
  form.append("files", new Blob([PNG], { type: "image/png" }), "pixel.png");
  const upload = await api("POST", p("/files/upload"), { token, form });
  assert.equal(upload.status, 200, JSON.stringify(upload.data));
  const file = upload.data.files[0];
  assert.equal(file.originalName, "pixel.png");
  assert.equal(file.type, "image/png");
  assert.ok(!("path" in file), "no server paths");

  const list = await api("GET", p("/files"), { token });
  assert.ok(list.data.files.some((f) => f.id === file.id));
  const download = await api("GET", file.url, { token });
  assert.equal(download.status, 200);
  assert.ok(Buffer.compare(download.data, PNG) === 0, "the same bytes come back");
  assert.equal(download.headers.get("x-content-type-options"), "nosniff");
  const anonymous = await api("GET", file.url);
  assert.equal(anonymous.status, 404, "a private file is not served to strangers");

  const del = await api("DELETE", p(`/files/${file.id}`), { token });
  assert.equal(del.status, 200);
  assert.equal((await api("GET", file.url, { token })).status, 404);

  const logout = await api("POST", p("/auth/logout"), { token, json: { refreshToken } });
  assert.equal(logout.status, 200);
  assert.deepEqual(logout.data, { message: "Logged out successfully" });
  const reuse = await api("POST", p("/auth/refresh"), { json: { refreshToken }, csrf: token0 });
  assert.equal(reuse.status, 401, "the logged-out refresh token is dead");
}

for (const [target, prefix] of [
  ["unified", ""],
  ["unified", "/api"],
  ["auth", "/api"],
]) {
  describe(`frontend account flow on serve ${target} (${prefix || "bare paths"})`, () => {
    let server;
    before(async () => {
      server = await startServer({ target });
    });
    after(async () => {
      await server?.stop();
    });
    it("csrf → signup → me → profile → password → login → org, team, invite, project → file → logout", async () => {
      await frontendFlow(server, prefix);
    });
    if (target === "auth") {
      it("serve auth answers /api paths only", async () => {
        const res = await fetch(`${server.url}/auth/me`);
        assert.equal(res.status, 404);
      });
    }
  });
}
