#!/usr/bin/env bash
# Checks the deployment examples: both App Platform specs parse as YAML and have the expected shape,
# and, when nginx is installed, deploy/nginx/flux.conf passes `nginx -t` inside a minimal wrapper.
# Needs python3 with PyYAML (pip install pyyaml). Not part of scripts/test.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"

python3 - "$here/do/app.unified.yaml" "$here/do/app.split.yaml" <<'EOF'
import sys
import yaml

for path in sys.argv[1:]:
    with open(path) as f:
        spec = yaml.safe_load(f)
    services = {s["name"]: s for s in spec["services"]}
    rules = spec["ingress"]["rules"]
    routed = {r["component"]["name"] for r in rules}
    assert routed <= set(services), f"{path}: ingress names unknown components {routed - set(services)}"
    for s in services.values():
        assert s["run_command"].startswith("flux serve "), f"{path}: {s['name']} run_command"
        assert s["health_check"]["http_path"].startswith("/health"), f"{path}: {s['name']} health"
        keys = {e["key"] for e in s["envs"]}
        assert {"DATABASE_URL", "JWT_SECRET", "REDIS_URL"} <= keys, f"{path}: {s['name']} envs"
    jobs = [j for j in spec.get("jobs", []) if j.get("kind") == "PRE_DEPLOY"]
    assert any(j["run_command"] == "flux migrate run" for j in jobs), f"{path}: no migrate job"
    socket = [r for r in rules if r["match"]["path"]["prefix"] == "/socket.io"]
    assert socket and socket[0]["component"].get("preserve_path_prefix") is True, f"{path}: /socket.io"
    print(f"ok  {path}: services {', '.join(services)}; {len(rules)} ingress rules")
EOF

if command -v nginx >/dev/null 2>&1; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    cat >"$tmp/nginx.conf" <<EOF
pid $tmp/nginx.pid;
error_log $tmp/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    include $here/nginx/flux.conf;
}
EOF
    nginx -t -q -p "$tmp" -c "$tmp/nginx.conf"
    echo "ok  $here/nginx/flux.conf: nginx -t ($(nginx -v 2>&1 | sed 's/^nginx version: //'))"
else
    echo "skip nginx -t: nginx is not installed"
fi
