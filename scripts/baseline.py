"""The benchmark's baseline: the least work an upload server can do for the same requests.

    python scripts/baseline.py --port 0 --dir /tmp/baseline

POST /upload streams the multipart `file` part, sha1s it and writes it to disk with fsync,
in a worker thread like relserver (no auth, no database, no validation). GET /download/{name}
serves a file with aiohttp's FileResponse. GET /noop answers at once, to measure the load
generator's own ceiling. Prints `baseline listening on URL` when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import secrets
from pathlib import Path

from aiohttp import BodyPartReader, web

READ_SIZE = 256 * 1024


class Sink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("wb")
        self.hash = hashlib.sha1()

    def write(self, data: bytes) -> None:
        self.hash.update(data)
        self.file.write(data)

    def finish(self) -> str:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return self.hash.hexdigest()


async def upload(request: web.Request) -> web.Response:
    directory: Path = request.app[DIR]
    reader = await request.multipart()
    digest = ""
    while (part := await reader.next()) is not None:
        assert isinstance(part, BodyPartReader)
        if part.name != "file":
            await part.release()
            continue
        sink = await asyncio.to_thread(Sink, directory / secrets.token_hex(8))
        while chunk := await part.read_chunk(READ_SIZE):
            await asyncio.to_thread(sink.write, chunk)
        digest = await asyncio.to_thread(sink.finish)
    return web.json_response({"sha1": digest}, status=201)


async def download(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[DIR] / request.match_info["name"])


async def noop(request: web.Request) -> web.Response:
    return web.Response(text="ok")


DIR = web.AppKey("dir", Path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    app = web.Application()
    app[DIR] = args.dir
    app.router.add_post("/upload", upload)
    app.router.add_get("/download/{name}", download)
    app.router.add_get("/noop", noop)
    app.router.add_post("/noop", noop)

    def announce(text: str) -> None:
        # aiohttp's banner names the bound URL (with the real port when --port is 0).
        if match := re.search(r"http://\S+", text):
            print(f"baseline listening on {match.group(0)}", flush=True)

    web.run_app(app, host="127.0.0.1", port=args.port, print=announce, access_log=None)


if __name__ == "__main__":
    main()
