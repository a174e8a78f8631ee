"""A round-robin HTTP proxy on loopback, standing in for the load balancer in front of several
relserver processes: each request goes to the next backend, whole, with its Host header kept
(so the servers build URLs that point back at the proxy)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

# Hop-by-hop headers (RFC 9110 §7.6.1) and the ones aiohttp sets itself.
_DROP = frozenset(
    h.lower()
    for h in ("Connection", "Keep-Alive", "Transfer-Encoding", "TE", "Upgrade", "Content-Length", "Content-Encoding")
)


class RoundRobin:
    def __init__(self, backends: Sequence[str]) -> None:
        self.backends = list(backends)
        self._next = itertools.cycle(self.backends)
        # Which backend answered each (method, path): what the test asserts spread.
        self.served: Counter[str] = Counter()
        self._session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        backend = next(self._next)
        self.served[backend] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        # Bodies go as they came: a chunk POST's `Content-Encoding: gzip` names its parts.
        if "Content-Encoding" in request.headers:
            headers["Content-Encoding"] = request.headers["Content-Encoding"]
        body = await request.read()
        async with self._session.request(
            request.method, backend + request.path_qs, headers=headers, data=body, allow_redirects=False
        ) as upstream:
            payload = await upstream.read()
            answer = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP}
            return web.Response(status=upstream.status, body=payload, headers=answer)


@asynccontextmanager
async def round_robin(backends: Sequence[str]) -> AsyncIterator[tuple[str, RoundRobin]]:
    """(the proxy's URL, the proxy) while the block runs."""
    proxy = RoundRobin(backends)
    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    # auto_decompress off both ways: relserver reads gzipped chunk parts itself.
    runner = web.AppRunner(app, auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    proxy._session = aiohttp.ClientSession(auto_decompress=False)
    try:
        yield f"http://127.0.0.1:{port}", proxy
    finally:
        await proxy._session.close()
        await runner.cleanup()
