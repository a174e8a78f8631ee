"""A round-robin HTTP proxy on loopback, standing in for the load balancer in front of several
relserver processes: each request goes to the next backend, whole, with its Host header kept
(so the servers build URLs that point back at the proxy). A backend that refuses connections
is skipped from then on, as a load balancer's health check would. With one backend and a
delay it is also a slow link (an S3 endpoint that answers GETs late)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

# Hop-by-hop headers (RFC 9110 §7.6.1) and the ones aiohttp sets itself.
_DROP = frozenset(
    h.lower()
    for h in ("Connection", "Keep-Alive", "Transfer-Encoding", "TE", "Upgrade", "Content-Length", "Content-Encoding")
)


# Which backend a request must go to (None: the next in turn).
Pin = Callable[[web.Request], "str | None"]
# Called with each request, the backend that answered it, and the answer's status and body.
After = Callable[[web.Request, str, int, bytes], Awaitable[None]]
# An answer the proxy gives itself instead of forwarding (None: forward).
Refuse = Callable[[web.Request], "web.Response | None"]


class RoundRobin:
    def __init__(
        self,
        backends: Sequence[str],
        *,
        get_delay: float = 0.0,
        pin: Pin | None = None,
        after: After | None = None,
        refuse: Refuse | None = None,
    ) -> None:
        self.backends = list(backends)
        self._next = itertools.cycle(self.backends)
        # Which backend answered each (method, path): what the test asserts spread.
        self.served: Counter[str] = Counter()
        self.dead: set[str] = set()
        self._session: aiohttp.ClientSession | None = None
        self._get_delay = get_delay
        self._pin = pin
        self._after = after
        self._refuse = refuse

    def _choose(self, request: web.Request) -> str:
        pinned = self._pin(request) if self._pin is not None else None
        if pinned is not None and pinned not in self.dead:
            return pinned
        for _ in self.backends:
            backend = next(self._next)
            if backend not in self.dead:
                return backend
        raise web.HTTPBadGateway(text="no backend left")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        if self._refuse is not None and (refusal := self._refuse(request)) is not None:
            return refusal
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        # Bodies go as they came: a chunk POST's `Content-Encoding: gzip` names its parts.
        if "Content-Encoding" in request.headers:
            headers["Content-Encoding"] = request.headers["Content-Encoding"]
        body = await request.read()
        if request.method == "GET" and self._get_delay:
            await asyncio.sleep(self._get_delay)
        while True:
            backend = self._choose(request)
            try:
                async with self._session.request(
                    request.method, backend + request.path_qs, headers=headers, data=body, allow_redirects=False
                ) as upstream:
                    payload = await upstream.read()
                    answer = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP}
                    status = upstream.status
            except aiohttp.ClientConnectorError:
                # Refused before anything was sent: safe to send elsewhere, even a POST.
                self.dead.add(backend)
                continue
            self.served[backend] += 1
            if self._after is not None:
                await self._after(request, backend, status, payload)
            return web.Response(status=status, body=payload, headers=answer)


@asynccontextmanager
async def round_robin(
    backends: Sequence[str],
    *,
    get_delay: float = 0.0,
    pin: Pin | None = None,
    after: After | None = None,
    refuse: Refuse | None = None,
) -> AsyncIterator[tuple[str, RoundRobin]]:
    """(the proxy's URL, the proxy) while the block runs."""
    proxy = RoundRobin(backends, get_delay=get_delay, pin=pin, after=after, refuse=refuse)
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
