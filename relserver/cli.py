"""The command line: `relserver [serve] …`, `relserver token …`, `relserver project …`,
`relserver vacuum`, `relserver check`, `relserver resolve …`; one parser tree, `serve` when no
command is given.

Every serve flag has a RELSERVER_* environment twin; a flag beats the environment, the
environment beats the default. Serving is `serve.py`'s, the data-dir commands `admin.py`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import __version__, auth
from .admin import run_admin_command
from .config import (
    ASSEMBLE_LEASE_SECONDS,
    BLOB_GRACE_SECONDS,
    CHUNK_SIZE,
    DEFAULT_DATA_DIR,
    DEFAULT_HOST,
    DEFAULT_PORT,
    LOG_LEVELS,
    MAX_FILE_SIZE,
    MIN_BLOB_GRACE_SECONDS,
    RESOLVE_CACHE_SIZE,
    UPLOAD_MODES,
    Config,
    GiB,
    KiB,
    MiB,
)
from .datadir import DataDirError, describe_error
from .resolve_command import add_resolve_arguments, run_resolve
from .serve import StartupError, configure_logging, serve
from .storage.blobs import BlobStoreUnavailable
from .storage.blobs.s3_config import BlobUrl
from .storage.catalog import CatalogUnavailable

ENV_PREFIX = "RELSERVER_"


_SIZE = re.compile(r"(?i)\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*")


_UNITS = {"": 1, "b": 1, "k": KiB, "kb": 1000, "kib": KiB, "m": MiB, "mb": 1000**2, "mib": MiB}


_UNITS |= {"g": GiB, "gb": 1000**3, "gib": GiB}


def parse_size(text: str) -> int:
    """`1048576`, `512KiB`, `10MB`, `2GiB` → bytes."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1048576, 512KiB, 10MB or 2GiB)")
    return int(match.group(1)) * _UNITS[(match.group(2) or "").lower()]


def parse_chunk_size(text: str) -> int:
    size = parse_size(text)
    # sentry-cli <= 2.39.1 assumes a power of two (api/endpoints/chunk.py comment).
    if size < 1024 or size & (size - 1):
        raise argparse.ArgumentTypeError(f"not a power of two of at least 1KiB: {text!r}")
    return size


def parse_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text!r} (0 to 65535; 0 picks a free one)")
    return port


def parse_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 10**9:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return seconds


def parse_grace_seconds(text: str) -> float:
    seconds = parse_seconds(text)
    if seconds < MIN_BLOB_GRACE_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is too short: at least {MIN_BLOB_GRACE_SECONDS:g} seconds, or the collector "
            "could delete an upload's object before its row commits"
        )
    return seconds


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r} (use 1/0, true/false)")


class _EnvDefault:
    """Reads one RELSERVER_* variable for a flag's default, reporting bad values like argparse.

    `deferred`: collect the errors instead of exiting at once, so a bad serve variable (say
    RELSERVER_PORT) does not stop `relserver token list`; `parse_args` reports them for serve.
    """

    def __init__(self, parser: argparse.ArgumentParser, environ: Mapping[str, str], *, deferred: bool = False) -> None:
        self.parser = parser
        self.environ = environ
        self.deferred = deferred
        self.errors: list[str] = []

    def __call__(self, name: str, convert: Callable[[str], Any], default: Any) -> Any:
        raw = self.environ.get(ENV_PREFIX + name)
        if raw is None:
            return default
        try:
            return convert(raw)
        except argparse.ArgumentTypeError as exc:
            if not self.deferred:
                self.parser.error(f"{ENV_PREFIX}{name}: {exc}")
            self.errors.append(f"{ENV_PREFIX}{name}: {exc}")
            return default


def parse_data_dir(text: str) -> Path:
    # An empty value would mean the current directory, by accident rather than by choice.
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path is not a data dir (give a directory, e.g. ./.relserver)")
    return Path(text)


DATA_DIR_HELP = (
    "where the SQLite database, blobs and admin token live; may come before or after the "
    "command (env RELSERVER_DATA_DIR; default ./.relserver)"
)


def parse_database_url(text: str) -> str | None:
    """A PostgreSQL URL (libpq's form, with its query options), or empty for SQLite."""
    if not text.strip():
        return None
    if not text.startswith(("postgresql://", "postgres://")):
        raise argparse.ArgumentTypeError(
            "not a PostgreSQL URL: give postgresql://user:password@host:port/database (or leave it unset for SQLite)"
        )
    return text


DATABASE_URL_HELP = (
    "keep the catalog (everything but the bytes) in this PostgreSQL database instead of the data "
    "dir's SQLite file, e.g. postgresql://relserver:secret@db:5432/relserver?sslmode=require; "
    "needs `pip install 'relserver[postgres]'` (env RELSERVER_DATABASE_URL; default: SQLite)"
)


def parse_blob_url(text: str) -> str | None:
    """An S3 bucket and optional prefix (s3://bucket/prefix), or empty for the data dir."""
    if not text.strip():
        return None
    try:
        BlobUrl.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "not an S3 URL: give s3://bucket or s3://bucket/prefix (or leave it unset for the data dir)"
        ) from None
    return text


BLOB_URL_HELP = (
    "keep the blobs (the files' bytes) in this S3 bucket and prefix instead of the data dir, e.g. "
    "s3://artifacts/relserver; endpoint, region and credentials come from AWS_ENDPOINT_URL, AWS_REGION, "
    "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; needs `pip install 'relserver[s3]'` "
    "(env RELSERVER_BLOB_URL; default: the data dir)"
)

# The global options: each may come before or after the command.
_GLOBAL_OPTIONS = ("--data-dir", "--database-url", "--blob-url")


def _add_data_dir(
    parser: argparse.ArgumentParser,
    default: Any = argparse.SUPPRESS,
    database_default: Any = argparse.SUPPRESS,
    blob_default: Any = argparse.SUPPRESS,
) -> None:
    """`--data-dir`, `--database-url` and `--blob-url` on every level of the tree. Below the top
    they default to SUPPRESS, so a value given before the command is not overwritten by a
    subcommand's default."""
    parser.add_argument("--data-dir", type=parse_data_dir, default=default, metavar="DIR", help=DATA_DIR_HELP)
    parser.add_argument(
        "--database-url", type=parse_database_url, default=database_default, metavar="URL", help=DATABASE_URL_HELP
    )
    parser.add_argument("--blob-url", type=parse_blob_url, default=blob_default, metavar="URL", help=BLOB_URL_HELP)


COMMANDS = ("serve", "token", "project", "vacuum", "check", "resolve")


_TOP_LEVEL_FLAGS = ("-h", "--help", "--version")


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The one parser tree: `relserver [--data-dir DIR] {serve,token,project,vacuum} …`."""
    return _build(environ)[0]


def _build(environ: Mapping[str, str]) -> tuple[argparse.ArgumentParser, dict[str, _EnvDefault]]:
    parser = argparse.ArgumentParser(
        prog="relserver",
        description=(
            "Serve Sentry's release-artifact API: sentry-cli, the bundler plugins and curl can "
            "create releases and upload files to it, and you can inspect what they sent."
        ),
        epilog=(
            "With no command, relserver serves: `relserver --port 9000` is `relserver serve --port 9000`.\n"
            "`relserver serve --help` lists the server's options; each has a RELSERVER_* environment twin.\n"
            "Quick start: relserver --port 9000, then upload with the printed token, e.g.\n"
            "  sentry-cli --url http://127.0.0.1:9000 --auth-token TOKEN -o acme -p web releases new 1.0"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    env = _EnvDefault(parser, environ)
    parser.add_argument("--version", action="version", version=f"relserver {__version__}")
    _add_data_dir(
        parser,
        env("DATA_DIR", parse_data_dir, DEFAULT_DATA_DIR),
        env("DATABASE_URL", parse_database_url, None),
        env("BLOB_URL", parse_blob_url, None),
    )
    commands = parser.add_subparsers(dest="command", required=True, title="commands")
    serve_env = _add_serve(commands, environ)
    _add_token(commands)
    _add_project(commands)
    vacuum = commands.add_parser(
        "vacuum",
        help="remove unreferenced blobs and stale temp files (refuses while a server runs)",
        description="Run the start-up sweep now: prune unreferenced blob rows, delete unreferenced "
        "blob files and relserver's stale temp files, and print what went. Takes the data dir's "
        "lock, so it refuses while a server holds it (a temp file may be an upload in flight).",
    )
    _add_data_dir(vacuum)
    vacuum_env = _EnvDefault(vacuum, environ, deferred=True)
    _add_blob_grace(
        vacuum,
        vacuum_env,
        "delete blobs unreferenced, and leftover objects written, longer ago than this; give the servers' value",
    )
    check = commands.add_parser(
        "check",
        help="check the data dir: database integrity, every row's blob present (read-only)",
        description="Check a data dir without changing it: SQLite's integrity check, that every "
        "row referencing a blob has a blob row, and that every blob row's bytes are there. Exits 1 "
        "on any problem. Safe beside a running server.",
    )
    _add_data_dir(check)
    resolve = commands.add_parser(
        "resolve",
        help="would Sentry resolve these frames with what was uploaded? (read-only)",
        description="Resolve JavaScript frames as Sentry's processing would, over what was uploaded, "
        "and print every step: ✔/✖ per frame, the candidate names, the map, the original position, "
        "and hints. Exit 0 only when every frame resolved, 1 when one did not, 2 when the input or "
        "the project is unusable. Needs `pip install 'relserver[resolve]'`; safe beside a running server.",
        epilog="Example: relserver resolve --org acme --project web --release 1.0 "
        "https://example.com/assets/app.js:1:234",
    )
    add_resolve_arguments(resolve)
    _add_data_dir(resolve)
    return parser, {"serve": serve_env, "vacuum": vacuum_env}


def _add_blob_grace(parser: argparse.ArgumentParser, env: _EnvDefault, what: str) -> None:
    """`--blob-grace-seconds`, for serve and for vacuum (which should be given the servers' value)."""
    parser.add_argument(
        "--blob-grace-seconds",
        type=parse_grace_seconds,
        default=env("BLOB_GRACE_SECONDS", parse_grace_seconds, BLOB_GRACE_SECONDS),
        metavar="SECONDS",
        help=f"PostgreSQL + S3: {what}, at least {MIN_BLOB_GRACE_SECONDS:g} "
        "(env RELSERVER_BLOB_GRACE_SECONDS; default %(default)s)",
    )


def _add_serve(commands: Any, environ: Mapping[str, str]) -> _EnvDefault:
    parser = commands.add_parser(
        "serve",
        help="serve the API (the default when no command is given)",
        description="Serve Sentry's release-artifact API on one data dir, which it locks for its "
        "whole run (a second server on the same data dir refuses to start).",
    )
    env = _EnvDefault(parser, environ, deferred=True)
    parser.add_argument(
        "--host",
        default=env("HOST", str, DEFAULT_HOST),
        help="address to bind (env RELSERVER_HOST; default %(default)s; 0.0.0.0 for every interface)",
    )
    parser.add_argument(
        "--port",
        type=parse_port,
        default=env("PORT", parse_port, DEFAULT_PORT),
        help="port to listen on, 0 for a free one; the banner prints the real URL "
        "(env RELSERVER_PORT; default %(default)s)",
    )
    _add_data_dir(parser)
    parser.add_argument(
        "--max-file-size",
        type=parse_size,
        default=env("MAX_FILE_SIZE", parse_size, MAX_FILE_SIZE),
        metavar="SIZE",
        help="largest uploaded file, e.g. 100MiB; larger ones get a 413 "
        "(env RELSERVER_MAX_FILE_SIZE; default 2GiB, Sentry's own limit)",
    )
    parser.add_argument(
        "--token",
        default=env("TOKEN", str, None),
        help="also accept this bearer token, with admin scopes; for CI and scripts "
        "(env RELSERVER_TOKEN). Without any token, the first start mints one.",
    )
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        default=env("NO_FSYNC", parse_bool, False),
        help="skip fsync on blobs and SQLite commits: faster, but a power loss may lose "
        "acknowledged uploads; for tests and throwaway mocks (env RELSERVER_NO_FSYNC=1)",
    )
    parser.add_argument(
        "--no-auto-create",
        action="store_true",
        default=env("NO_AUTO_CREATE", parse_bool, False),
        help="answer 404 for unknown organizations and projects instead of creating them on "
        "first use, as Sentry does (env RELSERVER_NO_AUTO_CREATE=1)",
    )
    parser.add_argument(
        "--upload-mode",
        choices=UPLOAD_MODES,
        default=env("UPLOAD_MODE", str, "artifact-bundles"),
        help="what chunk upload offers, which picks sentry-cli 2.x's path: artifact-bundles (as "
        "today's Sentry), release-bundles (one zip unpacked into release files), legacy (no chunk "
        "upload: one multipart request per file) (env RELSERVER_UPLOAD_MODE; default %(default)s)",
    )
    parser.add_argument(
        "--public-url",
        default=env("PUBLIC_URL", str, None),
        metavar="URL",
        help="the origin clients reach this server on, for the chunk-upload URL and Link headers; "
        "default: the origin of each request (env RELSERVER_PUBLIC_URL)",
    )
    parser.add_argument(
        "--trust-proxy",
        action="store_true",
        default=env("TRUST_PROXY", parse_bool, False),
        help="take the request origin from X-Forwarded-Proto/-Host; only behind your own proxy "
        "(env RELSERVER_TRUST_PROXY=1)",
    )
    parser.add_argument(
        "--chunk-size",
        type=parse_chunk_size,
        default=env("CHUNK_SIZE", parse_chunk_size, CHUNK_SIZE),
        metavar="SIZE",
        help="chunk size advertised to clients, a power of two (env RELSERVER_CHUNK_SIZE; default 8MiB, Sentry's)",
    )
    _add_blob_grace(parser, env, "how long an unreferenced blob stays before the collector deletes it")
    parser.add_argument(
        "--blob-redirect",
        action="store_true",
        default=env("BLOB_REDIRECT", parse_bool, False),
        help="with --blob-url: answer downloads of whole files with a redirect to a presigned S3 URL "
        "instead of proxying the bytes; clients must reach the bucket (env RELSERVER_BLOB_REDIRECT=1)",
    )
    parser.add_argument(
        "--assemble-lease-seconds",
        type=parse_seconds,
        default=env("ASSEMBLE_LEASE_SECONDS", parse_seconds, ASSEMBLE_LEASE_SECONDS),
        metavar="SECONDS",
        help="how long an assembly's lease lasts unrenewed: after a process dies, another takes its "
        "task over this much later (env RELSERVER_ASSEMBLE_LEASE_SECONDS; default %(default)s)",
    )
    parser.add_argument(
        "--resolve-cache-size",
        type=parse_size,
        default=env("RESOLVE_CACHE_SIZE", parse_size, RESOLVE_CACHE_SIZE),
        metavar="SIZE",
        help="memory for resolve's built source maps, counted as the bytes of the files they were "
        "built from; the least recently used go first (env RELSERVER_RESOLVE_CACHE_SIZE; default 256MiB)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=env("LOG_LEVEL", str.lower, "info"),
        help="log verbosity; info logs one line per request (env RELSERVER_LOG_LEVEL; default %(default)s)",
    )
    return env


def _add_token(commands: Any) -> None:
    token = commands.add_parser(
        "token",
        help="manage API tokens (safe beside a running server)",
        description="Manage API tokens. Each command is one short SQLite transaction, safe while a "
        "server runs on the same data dir.",
    )
    _add_data_dir(token)
    token_commands = token.add_subparsers(dest="action", required=True, title="actions")
    create = token_commands.add_parser(
        "create",
        help="mint a token and print it (once)",
        description="Mint a bearer token; it is printed once and stored only as a hash.",
    )
    create.add_argument(
        "--scope",
        action="append",
        choices=sorted(auth.KNOWN_SCOPES),
        metavar="SCOPE",
        help="a Sentry scope, repeatable (default: project:releases and org:read). "
        f"Known: {', '.join(sorted(auth.KNOWN_SCOPES))}",
    )
    create.add_argument("--org", help="bind the token to this organization slug; other orgs answer 403")
    create.add_argument("--label", default="", help="a note to recognise the token by in `token list`")
    create.add_argument(
        "--org-token",
        action="store_true",
        help="mint a Sentry org auth token (sntrys_…, scope org:ci) carrying --url and --org, so "
        "sentry-cli needs neither --url nor --org",
    )
    create.add_argument("--url", help="with --org-token: the server URL clients should use")
    _add_data_dir(create)

    listing = token_commands.add_parser(
        "list", help="list tokens (never their secrets)", description="List tokens, never their secrets."
    )
    _add_data_dir(listing)
    revoke = token_commands.add_parser(
        "revoke",
        help="revoke a token by the id `token list` shows",
        description="Revoke a token; requests carrying it answer 401 from then on.",
    )
    revoke.add_argument("id", type=int, help="the token's id, as `relserver token list` shows it")
    _add_data_dir(revoke)


def _add_project(commands: Any) -> None:
    project = commands.add_parser(
        "project",
        help="provision projects (safe beside a running server)",
        description="Provision organizations and projects (needed with --no-auto-create).",
    )
    _add_data_dir(project)
    project_commands = project.add_subparsers(dest="action", required=True, title="actions")
    project_create = project_commands.add_parser(
        "create",
        help="create an organization and project (needed with --no-auto-create)",
        description="Create an organization and a project in it; both must be slugs Sentry accepts.",
    )
    project_create.add_argument("org", help="the organization slug, e.g. acme")
    project_create.add_argument("project", help="the project slug, e.g. web")
    _add_data_dir(project_create)


def with_command(argv: Sequence[str]) -> list[str]:
    """`argv` with `serve` in front when it names no command (`relserver --port 9000`)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in COMMANDS or arg in _TOP_LEVEL_FLAGS:
            return list(argv)
        if arg in _GLOBAL_OPTIONS:
            i += 2
        elif arg.startswith(tuple(f"{option}=" for option in _GLOBAL_OPTIONS)):
            i += 1
        else:
            break
    return ["serve", *argv]


def parse_args(argv: Sequence[str], environ: Mapping[str, str]) -> argparse.Namespace:
    parser, command_envs = _build(environ)
    args = parser.parse_args(with_command(argv))
    # A bad variable of one command's own stops that command only.
    command_env = command_envs.get(args.command)
    if command_env is not None and command_env.errors:
        command_env.parser.error(command_env.errors[0])
    return args


def config_from_args(args: argparse.Namespace) -> Config:
    return Config(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        database_url=args.database_url,
        blob_url=args.blob_url,
        max_file_size=args.max_file_size,
        token=args.token or None,
        fsync=not args.no_fsync,
        auto_create=not args.no_auto_create,
        log_level=args.log_level,
        upload_mode=args.upload_mode,
        public_url=args.public_url or None,
        trust_proxy=args.trust_proxy,
        chunk_size=args.chunk_size,
        blob_grace_seconds=args.blob_grace_seconds,
        blob_redirect=args.blob_redirect,
        assemble_lease_seconds=args.assemble_lease_seconds,
        resolve_cache_size=args.resolve_cache_size,
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv, os.environ if environ is None else environ)
    try:
        if args.command == "serve":
            config = config_from_args(args)
            configure_logging(config.log_level)
            asyncio.run(serve(config))
            return 0
        if args.command == "resolve":
            return run_resolve(args)
        return run_admin_command(args)
    except (StartupError, DataDirError, CatalogUnavailable, BlobStoreUnavailable, OSError, sqlite3.Error) as exc:
        # Whatever the data dir or the socket refused, in one line: never a traceback.
        message = str(exc) if isinstance(exc, StartupError) else describe_error(args.data_dir, exc)
        if message is None:
            raise
        print(f"relserver: {message}", file=sys.stderr)
        return 1
