"""The live activity feed: the API calls this process answered, newest first (the Spotlight
lesson: "what did my build just send?" without reading logs).

A bounded in-memory ring per process (`Config.ui_activity_limit`): with several processes
behind a load balancer each shows its own calls. Calls are recorded when their response
starts (`on_response_prepare`), so status and size are the ones sent.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from .. import sentry

API_PREFIX = "/api/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_started_key = web.RequestKey("activity_started", float)


@dataclass(frozen=True, slots=True)
class ApiCall:
    time: datetime
    method: str
    path: str
    query: str
    status: int
    # Bytes the client sent (its Content-Length) and bytes answered, when known.
    request_size: int | None
    response_size: int | None
    duration_ms: float
    user_agent: str
    # No route matched: a call relserver does not implement (DESIGN D6).
    unimplemented: bool

    def names_organization(self, slug: str) -> bool:
        return f"/organizations/{slug}/" in self.path or f"/projects/{slug}/" in self.path


class ActivityFeed:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._calls: deque[ApiCall] = deque(maxlen=limit)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(API_PREFIX):
            request[_started_key] = time.perf_counter()
        return await handler(request)

    async def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        started = request.get(_started_key)
        if started is None:
            return
        match_info = request.match_info
        self._calls.append(
            ApiCall(
                time=datetime.now(UTC),
                method=request.method,
                path=sentry.header_text(request.path),
                query=sentry.header_text(request.query_string),
                status=response.status,
                request_size=request.content_length,
                response_size=response.content_length,
                duration_ms=(time.perf_counter() - started) * 1000,
                user_agent=sentry.header_text(request.headers.get("User-Agent", "")),
                unimplemented=isinstance(match_info.http_exception, web.HTTPNotFound),
            )
        )

    def recent(self, organization: str | None = None) -> list[ApiCall]:
        """Newest first; only the calls naming `organization` when one is given."""
        calls = reversed(self._calls)
        if organization is None:
            return list(calls)
        return [c for c in calls if c.names_organization(organization)]

    def clear(self) -> None:
        self._calls.clear()
