#!/bin/sh
# Builds the resolve tests' app with real bundlers and records real Node stack traces.
# Usage: build.sh OUT_DIR (the committed outputs are tests/resolve_app/dist). Needs Node,
# `npm ci` here, and sentry-cli (SENTRY_CLI, default sentry-cli) for `sourcemaps inject`. Paths of this checkout in the stacks become app:/// URLs (what Sentry's
# RewriteFrames integration sends) and relative source paths, so the outputs do not depend on
# where they were built.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
cd "$here"
esbuild=node_modules/.bin/esbuild
common="src/index.js --bundle --minify --platform=node --format=cjs --log-level=warning"
$esbuild $common --sourcemap --outfile="$out/esbuild/app.js"
$esbuild $common --sourcemap=inline --outfile="$out/inline/app.js"
$esbuild $common --sourcemap --sources-content=false --outfile="$out/nocontent/app.js"
node_modules/.bin/webpack --config webpack.config.cjs --output-path "$out/webpack" >/dev/null
# Debug ids as sentry-cli injects them (derived from the content, so the same every build).
rm -rf "$out/injected" && cp -R "$out/esbuild" "$out/injected" && rm -f "$out/injected"/*.txt
"${SENTRY_CLI:-sentry-cli}" sourcemaps inject "$out/injected" >/dev/null
for build in esbuild inline nocontent webpack injected; do
  node "$out/$build/app.js" | sed "s#$out/#app:///dist/#g" >"$out/$build/stack.txt"
  node --enable-source-maps "$out/$build/app.js" | sed "s#$here/##g; s#$out/#app:///dist/#g" >"$out/$build/node-stack.txt"
done
