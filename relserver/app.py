"""`create_app(config)`: state keys, the storage lifecycle, middlewares and routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .api import setup_routes
from .api.common import Handler
from .api.middleware import auth_middleware, error_middleware
from .config import Config
from .datadir import DataDirLock
from .keys import activity_key, assembler_key, backend_key, blobstore_key, catalog_key, config_key, signin_codes_key
from .services import Backend, backfill_semver, bootstrap_tokens, sweep_leftovers
from .services.assembly import TAKEOVER_POLL_SECONDS, Assembler
from .services.collector import COLLECT_INTERVAL_SECONDS, Collector
from .services.sessions import SignInCodes
from .storage import blobs_for, catalog_for
from .storage.blobs import SweepReport
from .ui.activity import ActivityFeed
from .ui.app import setup_ui

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StartupReport:
    """What start-up did, for the banner."""

    sweep: SweepReport
    # The admin token minted on this start (first start with no tokens), shown once.
    new_admin_token: str | None


startup_key = web.AppKey("startup", StartupReport)

# Options for the aiohttp server that runs the app (AppRunner / TestServer keyword arguments).
# On a chunk POST `Content-Encoding: gzip` means every `file` part is gzipped, not the body
# (api/endpoints/chunk.py), so aiohttp must not try to inflate whole bodies itself.
SERVER_OPTIONS: dict[str, Any] = {"auto_decompress": False}


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """Lock the data dir, open the stores, sweep leftovers, make sure a token exists; undo on exit.

    The lock comes first (DESIGN invariant 10): a second process on the same data dir stops
    here, before it could sweep the first one's uploads in flight or touch its database.
    """
    config = app[config_key]
    lock = DataDirLock(config.data_dir)
    await asyncio.to_thread(_make_and_lock, lock)
    try:
        blobstore = blobs_for(config)
        await asyncio.to_thread(blobstore.prepare)
        catalog = catalog_for(config)
        await catalog.open()
        try:
            sweep = await sweep_leftovers(catalog, blobstore)
            if sweep.temp_files or sweep.orphan_blobs:
                log.info(
                    "start-up sweep removed %d temp file(s) and %d unreferenced blob(s)",
                    sweep.temp_files,
                    sweep.orphan_blobs,
                )
            new_token = await bootstrap_tokens(catalog, config)
            backend = Backend(config, catalog, blobstore)
            # Releases stored before the semver columns existed are parsed once.
            if parsed := await backfill_semver(backend):
                log.info("parsed the versions of %d release(s) for semver sorting and search", parsed)
            app[catalog_key] = catalog
            app[blobstore_key] = blobstore
            app[backend_key] = backend
            app[startup_key] = StartupReport(sweep=sweep, new_admin_token=new_token)
            lease = config.assemble_lease_seconds
            assembler = Assembler(backend, lease_seconds=lease, poll_seconds=min(TAKEOVER_POLL_SECONDS, lease / 2))
            app[assembler_key] = assembler
            # Assemblies a previous process accepted and did not finish start again (their
            # chunks are owned blobs, which the sweep keeps).
            await assembler.resume()
            # PostgreSQL + S3: freed blobs wait for the collector, which runs in every process.
            collector = Collector(
                catalog, blobstore, grace=config.blob_grace_seconds, interval=COLLECT_INTERVAL_SECONDS
            )
            if backend.deferred_deletion:
                collector.start()
            try:
                yield
            finally:
                await collector.close()
                await assembler.close()
                backend.sourcemaps.close()
        finally:
            await catalog.close()
    finally:
        await asyncio.to_thread(lock.release)


def _make_and_lock(lock: DataDirLock) -> None:
    lock.data_dir.mkdir(parents=True, exist_ok=True)
    lock.acquire()


class InFlight:
    """Counts requests being handled, so a shutdown can wait for them (SIGTERM is graceful)."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.count += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self, seconds: float) -> bool:
        """True when nothing is in flight any more, False when `seconds` ran out first."""
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


inflight_key = web.AppKey("inflight", InFlight)


def create_app(config: Config) -> web.Application:
    """Build the application; all I/O happens later, in `storage_ctx`."""
    inflight = InFlight()
    activity = ActivityFeed(config.ui_activity_limit)
    app = web.Application(
        middlewares=[inflight.middleware, activity.middleware, error_middleware, auth_middleware],
        # JSON bodies are read whole; uploads stream and enforce their own limits.
        client_max_size=config.max_field_size,
    )
    app[config_key] = config
    app[inflight_key] = inflight
    app[activity_key] = activity
    app[signin_codes_key] = SignInCodes()
    app.on_response_prepare.append(activity.on_response_prepare)
    app.cleanup_ctx.append(storage_ctx)
    setup_routes(app)
    setup_ui(app, config)
    return app
