"""`relserver resolve`: would Sentry resolve these frames with what was uploaded? Read-only
over the data dir (or the configured catalog and blob store), so it runs beside a server.

Exit status: 0 when every frame resolved, 1 when one did not (a CI job gates on it after its
upload), 2 when nothing could be resolved (bad input, unknown organization or project, no
`relserver[resolve]` extra). No SQL here."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from .config import Config
from .datadir import DataDirError
from .services import Backend
from .services import resolve as service
from .storage import blobs_for, opened_catalog


def add_resolve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", required=True, help="the organization slug the files were uploaded to")
    parser.add_argument("--project", required=True, help="the project slug")
    parser.add_argument("--release", help="the event's release (an --event's own is used otherwise)")
    parser.add_argument("--dist", help="the event's dist (an --event's own is used otherwise)")
    given = parser.add_mutually_exclusive_group()
    given.add_argument(
        "--stack-file",
        metavar="FILE",
        help="a JavaScript Error.stack (V8, SpiderMonkey or JavaScriptCore); - reads stdin",
    )
    given.add_argument(
        "--event",
        metavar="FILE",
        help="a Sentry event as JSON (its frames, debug_meta, release and dist); - reads stdin",
    )
    parser.add_argument("frames", nargs="*", metavar="URL:LINE:COL", help="frames, outermost call first")
    parser.add_argument("--json", action="store_true", help="print the answer as the HTTP endpoint's JSON")


def _read(name: str) -> str:
    return sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")


def _request(args: argparse.Namespace) -> service.ResolveRequest:
    if args.frames and (args.stack_file or args.event):
        raise service.ResolveInputError("give frames, --stack-file or --event, not several")
    if args.stack_file:
        return service.ResolveRequest(service.parse_stacktrace(_read(args.stack_file)), args.release, args.dist)
    if args.event:
        try:
            raw = json.loads(_read(args.event))
        except (ValueError, RecursionError) as exc:
            raise service.ResolveInputError(f"--event is not JSON: {exc}") from None
        event = service.parse_event(raw)
        return service.ResolveRequest(event.frames, args.release or event.release, args.dist or event.dist)
    if not args.frames:
        raise service.ResolveInputError("give frames (URL:LINE:COL …), --stack-file or --event")
    return service.ResolveRequest([service.parse_frame_argument(f) for f in args.frames], args.release, args.dist)


def run_resolve(args: argparse.Namespace) -> int:
    config = Config(data_dir=args.data_dir, database_url=args.database_url, blob_url=args.blob_url)
    try:
        request = _request(args)
    except (service.ResolveInputError, OSError) as exc:
        print(f"relserver: {exc}", file=sys.stderr)
        return 2
    if not service.resolve_available():
        print(f"relserver: {service.ResolveUnavailable()}", file=sys.stderr)
        return 2
    if not config.database_url and not config.db_path.is_file():
        raise DataDirError(f"no relserver database in {config.data_dir} (give --data-dir the server's data dir)")
    return asyncio.run(_resolve(config, args, request))


async def _resolve(config: Config, args: argparse.Namespace, request: service.ResolveRequest) -> int:
    blobstore = blobs_for(config)
    if config.blob_url:
        await asyncio.to_thread(blobstore.prepare)
    async with opened_catalog(config) as catalog:
        async with catalog.read() as tx:
            org = await tx.organizations.get(args.org)
            project = await tx.projects.get(org.id, args.project) if org is not None else None
        if org is None or project is None:
            missing = f"organization {args.org!r}" if org is None else f"project {args.org}/{args.project}"
            print(f"relserver: no {missing} in {config.data_dir}", file=sys.stderr)
            return 2
        backend = Backend(config, catalog, blobstore)
        try:
            result = await service.resolve(backend, org, project, request.release, request.dist, request.frames)
        finally:
            backend.sourcemaps.close()
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        print(result.explain())
    return 0 if result.ok else 1
