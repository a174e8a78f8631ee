"""The data-dir commands: `token create|list|revoke`, `project create`, `vacuum`, `check`.

Token and project commands are one short SQLite transaction each and are safe beside a running
server; `vacuum` sweeps stale temp files, so it takes the data dir's lock and refuses while a
server holds it. Reading commands never create a data dir or a database. No SQL here."""

from __future__ import annotations

import argparse
import asyncio
import sys

from . import auth, sentry, services
from .config import (
    Config,
)
from .datadir import DataDirError, DataDirInUse, DataDirLock
from .services.collector import collect
from .services.context import deferred_deletion
from .storage import blobs_for, opened_catalog
from .storage.blobs import BlobStore
from .storage.catalog import Catalog


def run_admin_command(args: argparse.Namespace) -> int:
    """token, project and vacuum. Reading commands never create a data dir or a database."""
    config = Config(data_dir=args.data_dir, database_url=args.database_url, blob_url=args.blob_url)
    if args.command == "vacuum":
        _require_database(config)
        return asyncio.run(_vacuum(config.with_overrides(blob_grace_seconds=args.blob_grace_seconds)))
    if args.command == "check":
        _require_database(config)
        return asyncio.run(_check(config))
    if args.command == "token" and args.action in ("list", "revoke"):
        _require_database(config)
    else:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_store_command(config, args))


def _require_database(config: Config) -> None:
    if not config.data_dir.is_dir():
        raise DataDirError(f"no data dir at {config.data_dir} (give --data-dir, or start `relserver serve` once)")
    if not config.database_url and not config.db_path.is_file():
        raise DataDirError(f"no relserver database in {config.data_dir} (give --data-dir the server's data dir)")


async def _store_command(config: Config, args: argparse.Namespace) -> int:
    # Token and project commands are one short transaction each: safe beside a running server
    # (WAL, and the busy timeout waits out its writer), so they take no lock.
    async with opened_catalog(config) as catalog:
        if args.command == "project":
            return await _project_create(catalog, args)
        if args.action == "create":
            return await _token_create(catalog, args)
        if args.action == "list":
            return await _token_list(catalog)
        return await _token_revoke(catalog, args.id)


async def _vacuum(config: Config) -> int:
    """The start-up sweep, on demand; under the data dir's lock, so never beside a server."""
    lock = DataDirLock(config.data_dir)
    try:
        await asyncio.to_thread(lock.acquire)
    except DataDirInUse as exc:
        advice = "stop it first: vacuum removes temp files, which may be uploads in flight"
        raise DataDirInUse(exc.data_dir, exc.pid, advice) from None
    try:
        blobstore = await _remote_checked(config)
        async with opened_catalog(config) as catalog:
            report = await services.sweep_leftovers(catalog, blobstore)
            collected = None
            if deferred_deletion(catalog, blobstore):
                # PostgreSQL + S3: a collector pass now, leftovers included, with the grace
                # period servers use (other processes may be storing blobs this moment).
                collected = await collect(catalog, blobstore, grace=config.blob_grace_seconds, leftovers=True)
    finally:
        await asyncio.to_thread(lock.release)
    if collected is None:
        print(
            f"removed {report.temp_files} stale temp file(s), {report.orphan_blobs} unreferenced blob file(s) "
            f"and {report.blob_rows} unreferenced blob row(s) from {config.data_dir}"
        )
    else:
        print(
            f"removed {report.temp_files} stale temp file(s) from {config.data_dir}; marked "
            f"{report.blob_rows} unreferenced blob(s) for the collector, which deleted {collected.blobs} "
            f"blob(s) unreferenced for over {config.blob_grace_seconds:g} s and {collected.leftovers} "
            "leftover object(s) no row names"
        )
    return 0


async def _remote_checked(config: Config) -> BlobStore:
    """The configured blob store; a remote one is prepared first, so that a wrong endpoint or
    refused credentials end the command in one line (the disk engine needs nothing, and a
    read-only `check` must not create its directories)."""
    blobstore = blobs_for(config)
    if config.blob_url:
        await asyncio.to_thread(blobstore.prepare)
    return blobstore


async def _token_create(catalog: Catalog, args: argparse.Namespace) -> int:
    if args.org_token:
        if not args.org or not args.url:
            print("relserver: --org-token needs --org and --url", file=sys.stderr)
            return 2
        token = auth.new_org_token(url=args.url.rstrip("/"), org=args.org)
        scopes = frozenset(args.scope or ()) | auth.ORG_TOKEN_SCOPES
    else:
        token = auth.new_user_token()
        scopes = frozenset(args.scope or ("project:releases", "org:read"))
    async with catalog.write() as tx:
        await tx.tokens.insert(
            token_hash=auth.hash_token(token),
            label=args.label,
            scopes=scopes,
            organization=args.org,
            kind=auth.token_kind(token),
            last_characters=token[-4:],
        )
    print(token)
    return 0


async def _token_list(catalog: Catalog) -> int:
    async with catalog.read() as tx:
        tokens = await tx.tokens.all()
    # Whole labels: the column is as wide as the longest one.
    width = max([len("label"), *(len(t.label) for t in tokens)])
    print(f"{'id':>4}  {'kind':4}  {'ends':6}  {'org':12}  {'state':8}  {'label':{width}}  scopes")
    for t in tokens:
        state = "revoked" if t.revoked else "active"
        print(
            f"{t.id:>4}  {t.kind:4}  …{t.last_characters:5}  {t.organization or '*':12}  {state:8}  "
            f"{t.label:{width}}  {' '.join(sorted(t.scopes))}"
        )
    return 0


async def _token_revoke(catalog: Catalog, token_id: int) -> int:
    async with catalog.write() as tx:
        revoked = await tx.tokens.revoke(token_id)
    if revoked:
        print(f"revoked token {token_id}")
        return 0
    print(f"relserver: no active token with id {token_id}", file=sys.stderr)
    return 1


async def _project_create(catalog: Catalog, args: argparse.Namespace) -> int:
    if not sentry.is_valid_org_slug(args.org) or not sentry.is_valid_project_slug(args.project):
        print("relserver: not a valid Sentry organization or project slug", file=sys.stderr)
        return 2
    async with catalog.write() as tx:
        org = await tx.organizations.ensure(args.org)
        (project,) = await tx.projects.ensure(org.id, [args.project])
    print(f"{org.slug}/{project.slug}")
    return 0


async def _check(config: Config) -> int:
    """`relserver check`: what the data dir holds, and every problem on a line of its own."""
    blobstore = await _remote_checked(config)
    async with opened_catalog(config) as catalog:
        report = await services.check_data_dir(catalog, blobstore)
        # On a shared catalog a start-up sweep deletes no bytes (services.sweep_leftovers);
        # with S3 the collector deletes them once they are older than the grace period.
        if not catalog.shared:
            fate = "removed by the next sweep"
        elif deferred_deletion(catalog, blobstore):
            fate = f"deleted by the collector once older than {config.blob_grace_seconds:g} s"
        else:
            fate = "kept: a sweep on a shared catalog deletes no bytes"
    found = report.catalog
    print(
        f"schema {found.schema_version}, {found.release_files} release files, "
        f"{found.bundle_members} bundle members, {len(found.blob_rows)} blobs "
        f"({report.unreferenced_bytes} unreferenced in the blob store, {fate})"
    )
    for problem in report.problems:
        print(f"problem: {problem}")
    print("ok" if not report.problems else f"{len(report.problems)} problem(s)")
    return 1 if report.problems else 0
