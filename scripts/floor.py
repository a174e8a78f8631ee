"""The build benchmark's floor: the least a server can do for `sentry-cli sourcemaps upload --wait`.

    python scripts/floor.py --port 0 [--log]

It answers only the calls sentry-cli 3.x (and 2.x, with `artifact_bundles_v2` advertised)
makes for `sourcemaps upload --wait`, with or without `--release`:

    GET  /api/0/organizations/{org}/chunk-upload/         the options relserver advertises
    POST /api/0/organizations/{org}/chunk-upload/         every part is read and discarded
    POST /api/0/organizations/{org}/artifactbundle/assemble/

Chunk bodies are streamed and dropped: nothing is decompressed, hashed, stored or unpacked.
Only the part filenames (the chunks' sha1s) are remembered, so that assemble can answer
`not_found` with the chunks it has not seen yet, and `ok` as soon as it has seen them all.
That leaves the client, the loopback network and HTTP/multipart parsing: the lower bound
for any server on this machine. No authentication either. Any other request is answered
404 in Sentry's error shape; `--log` prints one line per request to find out what came.
Prints `floor listening on URL` when ready.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from aiohttp import BodyPartReader, web

READ_SIZE = 256 * 1024
MiB = 1024 * 1024

# Everything relserver's chunk-upload GET says, so that the CLI batches and compresses the
# same way against both servers.
OPTIONS: dict[str, Any] = {
    "chunkSize": 8 * MiB,
    "chunksPerRequest": 64,
    "maxFileSize": 2048 * MiB,
    "maxRequestSize": 32 * MiB,
    "concurrency": 8,
    "hashAlgorithm": "sha1",
    "compression": ["gzip"],
    "accept": ["release_files", "artifact_bundles", "artifact_bundles_v2"],
}

SEEN = web.AppKey("seen", set[str])
LOG = web.AppKey("log", bool)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


async def chunk_options(request: web.Request) -> web.Response:
    org = request.match_info["org"]
    return _json({"url": f"{request.scheme}://{request.host}/api/0/organizations/{org}/chunk-upload/", **OPTIONS})


async def chunk_upload(request: web.Request) -> web.Response:
    seen = request.app[SEEN]
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        assert isinstance(part, BodyPartReader)
        while await part.read_chunk(READ_SIZE):
            pass
        if part.filename:
            seen.add(part.filename)
    return web.Response(status=200)


async def assemble(request: web.Request) -> web.Response:
    body = await request.json()
    seen = request.app[SEEN]
    missing = [chunk for chunk in dict.fromkeys(body.get("chunks", [])) if chunk not in seen]
    if missing:
        return _json({"state": "not_found", "missingChunks": missing})
    return _json({"state": "ok", "detail": None, "missingChunks": []})


async def not_found(request: web.Request) -> web.Response:
    return _json({"detail": "The requested resource does not exist"}, status=404)


@web.middleware
async def log_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    if request.app[LOG]:
        sent = f" ({request.content_length} bytes)" if request.content_length else ""
        print(f"floor: {request.method} {request.path_qs}{sent} -> {response.status}", flush=True)
    return response


def make_app(*, log: bool = False) -> web.Application:
    app = web.Application(middlewares=[log_requests])
    app[SEEN] = set()
    app[LOG] = log
    org = "/api/0/organizations/{org}"
    app.router.add_get(f"{org}/chunk-upload/", chunk_options)
    app.router.add_post(f"{org}/chunk-upload/", chunk_upload)
    app.router.add_post(f"{org}/artifactbundle/assemble/", assemble)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", action="store_true", help="print one line per request")
    args = parser.parse_args()

    def announce(text: str) -> None:
        # aiohttp's banner names the bound URL (with the real port when --port is 0).
        if match := re.search(r"http://\S+", text):
            print(f"floor listening on {match.group(0)}", flush=True)

    web.run_app(make_app(log=args.log), host="127.0.0.1", port=args.port, print=announce, access_log=None)


if __name__ == "__main__":
    main()
