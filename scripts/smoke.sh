#!/usr/bin/env bash
# Start relserver on a free port in a throwaway data dir, create a release, upload a file
# with two headers using curl, upload it again (expecting 409), and stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
data=$(mktemp -d)
out="$data/server.out"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT

"$PYTHON" -m relserver --port 0 --data-dir "$data/store" --no-fsync >"$out" 2>&1 &
pid=$!
for _ in $(seq 100); do
    url=$(grep -o 'listening on http://[^ ]*' "$out" | cut -d' ' -f3 || true)
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "${url:-}" ] || { cat "$out"; echo "server did not start" >&2; exit 1; }
token=$(cat "$data/store/admin-token")
auth="Authorization: Bearer $token"

echo "== create release 1.0 for acme/web"
curl -sS -H "$auth" -H 'Content-Type: application/json' -d '{"version":"1.0","projects":["web"]}' \
    "$url/api/0/organizations/acme/releases/"
echo
printf 'console.log("hello")\n//# sourceMappingURL=app.js.map\n' >"$data/app.js"
echo "== upload ~/app.js with two headers"
curl -sS -w '\nHTTP %{http_code}\n' -H "$auth" -F "file=@$data/app.js" -F 'name=~/app.js' \
    -F 'header=Sourcemap: app.js.map' -F 'header=X-Build: 42' \
    "$url/api/0/projects/acme/web/releases/1.0/files/"
echo "== upload it again (Sentry answers 409)"
curl -sS -w '\nHTTP %{http_code}\n' -H "$auth" -F "file=@$data/app.js" -F 'name=~/app.js' \
    "$url/api/0/projects/acme/web/releases/1.0/files/"
