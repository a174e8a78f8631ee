"""Serving: bind first (a port in use leaves nothing behind), then open the data dir under its
lock, serve until SIGINT or SIGTERM, let requests in flight finish (bounded), print the banner."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
import sqlite3
import sys

from aiohttp import web

from . import __version__
from .app import SERVER_OPTIONS, create_app, inflight_key, startup_key
from .config import UI_SIGNIN_CODE_SECONDS, Config
from .datadir import DataDirError, describe_error
from .keys import signin_codes_key
from .storage import describe_blobs, describe_catalog

log = logging.getLogger("relserver")


# Seconds in-flight requests get to finish after SIGTERM/SIGINT before connections are closed.
SHUTDOWN_TIMEOUT = 10.0


# Pending connections per listening socket: aiohttp's TCPSite default.
LISTEN_BACKLOG = 128


ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs "%{User-Agent}i"'


class StartupError(Exception):
    """Serving could not start; the message is the whole line printed."""


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def serve(config: Config) -> None:
    """Bind, then open the data dir, then serve until SIGINT or SIGTERM; let in-flight
    requests finish (bounded)."""
    # The socket first: a port in use must leave no database, token or lock behind.
    sockets = await bind_sockets(config.host, config.port)
    try:
        await _serve_on(config, sockets)
    finally:
        for sock in sockets:
            sock.close()


async def _serve_on(config: Config, sockets: list[socket.socket]) -> None:
    app = create_app(config)
    # Handlers go in before anything is announced, so a SIGTERM right after the banner is
    # already a clean shutdown.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("relserver.access"),
        access_log_format=ACCESS_LOG_FORMAT,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        **SERVER_OPTIONS,
    )
    try:
        # storage_ctx: lock the data dir, open the database, sweep, bootstrap the admin token.
        await runner.setup()
    except (OSError, RuntimeError, sqlite3.Error, DataDirError) as exc:
        # RuntimeError covers CatalogUnavailable and BlobStoreUnavailable.
        raise StartupError(describe_error(config.data_dir, exc) or str(exc)) from exc
    try:
        sites = [web.SockSite(runner, sock) for sock in sockets]
        for site in sites:
            await site.start()
        port = sockets[0].getsockname()[1]
        new_token = app[startup_key].new_admin_token
        signin = await _signin_code(app, config, new_token) if _is_loopback(config.host) else None
        print_banner(config, base_url(config.host, port), new_token, signin)
        await stop.wait()
        # Graceful: stop accepting, let requests in flight finish (bounded), then close.
        log.info("shutting down: no new connections; waiting for %d request(s)", app[inflight_key].count)
        for site in sites:
            await site.stop()
        if not await app[inflight_key].wait_idle(SHUTDOWN_TIMEOUT):
            log.warning("requests still running after %ss; closing them", SHUTDOWN_TIMEOUT)
    finally:
        await runner.cleanup()


async def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address `host` resolves to, as asyncio's create_server
    binds them (SO_REUSEADDR, IPv6 only on IPv6 sockets); with port 0 they share one port."""
    where = f"{host}:{port}"
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise StartupError(f"cannot listen on {where}: {exc}") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise StartupError(f"cannot listen on {where}: {exc}") from exc
    return sockets


def _is_loopback(host: str) -> bool:
    """The local-mock case: only this machine can reach the server."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _signin_code(app: web.Application, config: Config, new_token: str | None) -> str | None:
    """A one-time code for the banner's sign-in link, for the admin token this server knows."""
    raw = new_token or config.token
    if raw is None:
        raw = await asyncio.to_thread(_read_admin_token, config)
    return app[signin_codes_key].issue(raw) if raw else None


def _read_admin_token(config: Config) -> str | None:
    try:
        return config.admin_token_path.read_text().strip() or None
    except OSError:
        return None


def print_banner(config: Config, url: str, new_token: str | None, signin_code: str | None = None) -> None:
    data_dir = config.data_dir.resolve()
    ui_url = f"{(config.public_url or url).rstrip('/')}/ui/"
    lines = [
        f"relserver {__version__} listening on {url}",
        f"  web UI:      {ui_url}",
        f"  data dir:    {data_dir}",
        f"  catalog:     {describe_catalog(config)}",
        f"  blob store:  {describe_blobs(config)}",
    ]
    if new_token:
        lines.append(f"  admin token: {new_token}")
        lines.append(f"               (shown once; also saved to {config.admin_token_path.resolve()})")
    elif config.token:
        lines.append("  admin token: the one given by --token / RELSERVER_TOKEN")
    elif config.admin_token_path.exists():
        lines.append(f"  admin token: in {config.admin_token_path.resolve()}")
    else:
        lines.append("  admin token: none on disk; mint one with `relserver token create`")
    if signin_code:
        lines.append(
            f"  sign in:     {ui_url}signin/?code={signin_code}  (works once, for {UI_SIGNIN_CODE_SECONDS // 60} min)"
        )
    lines.append(f"  try:         sentry-cli --url {url} --auth-token TOKEN -o ORG -p PROJECT releases new 1.0")
    print("\n".join(lines), flush=True)
