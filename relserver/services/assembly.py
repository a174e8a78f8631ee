"""Assembling uploaded chunks in the background: artifact bundles and release bundles.

States follow Sentry's (`created` → `assembling` → `ok` | `error`) and are persisted in
SQLite, so a client polling with `--wait` sees the truth across a restart: work a previous
process accepted but did not finish is started again by `resume()`. The heavy lifting
(concatenating, hashing, unzipping) runs in worker threads; one assembly at a time keeps
memory and disk bandwidth bounded. No HTTP.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from ..config import ASSEMBLE_LEASE_SECONDS
from ..errors import BLOB_STORE_UNAVAILABLE, BadRequest, is_disk_full
from ..ingest import bundle_zip
from ..ingest.bundle_zip import BundleError, BundleLimits
from ..ingest.chunks import chunk_error
from ..models import Organization, Project, Release, StoredBlob
from ..storage.blobs import BlobStoreUnavailable, StagedBlob
from ..storage.catalog import ReleaseGone, UnstorableText
from ..storage.sql.dialect import ts
from .bundles import save_artifact_bundle
from .context import Backend
from .release_files import upsert_release_bundle
from .scope import provision

log = logging.getLogger(__name__)

# Sentry's AssembleTask names: separate namespaces per kind of bundle (tasks/assemble.py).
ARTIFACT_BUNDLE = "organization.artifact_bundle"
RELEASE_BUNDLE = "organization.artifacts"
# Sentry keeps an assemble status for 600 s (tasks/assemble.py set_assemble_status).
STATUS_TTL = timedelta(seconds=600)
IN_PROGRESS = ("created", "assembling")
# relserver's own detail: a manifest value (path, url, header) holding NUL, which the
# PostgreSQL catalog cannot store.
UNSTORABLE_MANIFEST = "the bundle's manifest holds a NUL character, which the server's database cannot store"
# How many assemblies run at once.
MAX_CONCURRENT_ASSEMBLIES = 1
# How long an assemble call for a bundle being assembled here waits for it to finish before
# answering its current state. sentry-cli (`--wait`) and the bundler plugins poll about once a
# second, so a build assembled in under a second is answered `ok` by the call that started it
# instead of by the poll a second later; Sentry answers `created` at once and lets the client
# poll (tasks/assemble.py), which these clients handle the same way either answer.
ASSEMBLE_WAIT_SECONDS = 2.0
# How long a worker's claim on a task lasts unless renewed (DESIGN D10); renewed every third
# of it while the work runs. The default of `--assemble-lease-seconds` (config.py).
LEASE_SECONDS = ASSEMBLE_LEASE_SECONDS
# How often each process looks for tasks nobody holds (a takeover after a worker died).
TAKEOVER_POLL_SECONDS = 5.0


class Assembler:
    """Owns the background assembly tasks of one app."""

    def __init__(
        self, backend: Backend, *, lease_seconds: float = LEASE_SECONDS, poll_seconds: float = TAKEOVER_POLL_SECONDS
    ) -> None:
        self.backend = backend
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: dict[tuple[int, str, str], asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_ASSEMBLIES)
        # Who holds a lease: this process, unique across restarts and hosts.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._lease = timedelta(seconds=lease_seconds)
        self._poll_seconds = poll_seconds
        self._watcher: asyncio.Task[None] | None = None

    @property
    def limits(self) -> BundleLimits:
        c = self.backend.config
        return BundleLimits(
            max_file_size=c.max_file_size,
            max_members=c.max_bundle_members,
            max_member_size=c.max_bundle_member_size,
            max_expanded_size=c.max_bundle_expanded_size,
            max_compression_ratio=c.max_bundle_compression_ratio,
        )

    async def current_state(self, organization_id: int, kind: str, checksum: str) -> tuple[str, str | None] | None:
        """The cached status: in-progress ones always, finished ones for Sentry's 600 s."""
        async with self.backend.catalog.read() as tx:
            task = await tx.tasks.get(organization_id, kind, checksum)
        if task is None:
            return None
        if task.state not in IN_PROGRESS and datetime.now(UTC) - task.date_updated > STATUS_TTL:
            return None
        return task.state, task.detail

    async def start(self, organization_id: int, kind: str, checksum: str, request: dict[str, Any]) -> None:
        async with self.backend.catalog.write() as tx:
            await tx.tasks.set(organization_id, kind, checksum, "created", request=request)
        self._spawn(organization_id, kind, checksum, request)

    async def resume(self) -> int:
        """Start what was accepted and not finished, then keep watching for such work.

        On a catalog of this process alone (SQLite) every unfinished task is a previous run's,
        lease or not. On a shared one a task is taken only once nobody's lease runs, so a
        process that died mid-assembly hands its work to another within a lease (D10)."""
        shared = self.backend.catalog.shared
        started = await self._take_over(respect_leases=shared)
        if shared and self._poll_seconds > 0:
            self._watcher = asyncio.create_task(self._watch(), name="assembly takeover")
        return started

    async def _take_over(self, *, respect_leases: bool) -> int:
        now = _stamp(datetime.now(UTC))
        async with self.backend.catalog.read() as tx:
            unfinished = await tx.tasks.unfinished(unleased_at=now if respect_leases else None)
        started = 0
        for organization_id, kind, checksum, request in unfinished:
            if (organization_id, kind, checksum) in self._running:
                continue
            log.info("resuming the assembly of %s %s", kind, checksum)
            self._spawn(organization_id, kind, checksum, request, force=not respect_leases)
            started += 1
        return started

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                await self._take_over(respect_leases=True)
            except Exception:
                log.exception("looking for assemblies to take over failed; trying again")

    async def close(self) -> None:
        """Stop running work; what was interrupted resumes on the next start (or, on a shared
        catalog, in another process once the lease runs out)."""
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Until every assembly started so far has finished (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(
        self, organization_id: int, kind: str, checksum: str, request: dict[str, Any], *, force: bool = False
    ) -> None:
        task = asyncio.create_task(
            self._run(organization_id, kind, checksum, request, force=force), name=f"assemble {checksum}"
        )
        key = (organization_id, kind, checksum)
        self._tasks.add(task)
        self._running[key] = task
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(functools.partial(self._forget, key))

    def _forget(self, key: tuple[int, str, str], done: asyncio.Task[None]) -> None:
        """Drop a finished task from `_running`, unless a newer one for the same bundle took its place."""
        if self._running.get(key) is done:
            del self._running[key]

    async def settled_state(self, organization_id: int, kind: str, checksum: str) -> tuple[str, str | None] | None:
        """The cached status, after waiting up to ASSEMBLE_WAIT_SECONDS for an assembly running
        here to end.

        The wait is on the task itself (no thread, no polling) and is shielded, so a client that
        hangs up never cancels the assembly.
        """
        task = self._running.get((organization_id, kind, checksum))
        if task is not None and ASSEMBLE_WAIT_SECONDS > 0:
            await asyncio.wait([task], timeout=ASSEMBLE_WAIT_SECONDS)
        return await self.current_state(organization_id, kind, checksum)

    async def _claim(self, key: tuple[int, str, str], *, force: bool) -> bool:
        now = datetime.now(UTC)
        async with self.backend.catalog.write() as tx:
            return await tx.tasks.claim(*key, self.owner, _stamp(now), _stamp(now + self._lease), force=force)

    async def _renew(self, key: tuple[int, str, str]) -> None:
        """Keep the lease while the work runs (cancelled when it ends)."""
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            async with self.backend.catalog.write() as tx:
                kept = await tx.tasks.renew(*key, self.owner, _stamp(datetime.now(UTC) + self._lease))
            if not kept:
                log.warning("lost the lease on the assembly of %s; its outcome will not be recorded here", key[2])
                return

    async def _run(
        self, organization_id: int, kind: str, checksum: str, request: dict[str, Any], *, force: bool = False
    ) -> None:
        key = (organization_id, kind, checksum)
        async with self._slots:
            if not await self._claim(key, force=force):
                return  # finished meanwhile, or another process holds it
            renewer = asyncio.create_task(self._renew(key), name=f"lease {checksum}")
            try:
                state, detail = await self._work(organization_id, kind, checksum, request)
            finally:
                renewer.cancel()
                await asyncio.gather(renewer, return_exceptions=True)
            async with self.backend.catalog.write() as tx:
                await tx.tasks.finish(*key, self.owner, state, detail)

    async def _work(
        self, organization_id: int, kind: str, checksum: str, request: dict[str, Any]
    ) -> tuple[str, str | None]:
        """Assemble; the end state and its detail."""
        try:
            if kind == ARTIFACT_BUNDLE:
                await self._artifact_bundle(organization_id, checksum, request)
            else:
                await self._release_bundle(organization_id, checksum, request)
        except BundleError as exc:
            log.info("assembly of %s failed: %s", checksum, exc)
            return "error", str(exc)
        except asyncio.CancelledError:
            raise
        except UnstorableText:
            log.info("assembly of %s failed: a manifest value holds NUL", checksum)
            return "error", UNSTORABLE_MANIFEST
        except BlobStoreUnavailable as exc:
            log.error("assembly of %s failed: %s", checksum, exc)
            return "error", BLOB_STORE_UNAVAILABLE
        except Exception as exc:
            if is_disk_full(exc):
                log.error("assembly of %s: disk full", checksum)
                return "error", "the server's disk is full"
            log.exception("assembly of %s crashed", checksum)
            return "error", "internal server error"
        return "ok", None

    async def _assembled_file(
        self, organization_id: int, checksum: str, chunks: list[str], name: str
    ) -> tuple[StagedBlob, StoredBlob]:
        async with self.backend.catalog.read() as tx:
            # Only chunks this organization uploaded count (debug_files/upload.py find_missing_chunks).
            if set(chunks) - await tx.chunks.owned(organization_id, chunks):
                raise BundleError(bundle_zip.NOT_ALL_CHUNKS)
            rows = await tx.blobs.get(chunks)
        sizes = {sha1: blob.size for sha1, blob in rows.items()}
        bundle_zip.check_total_size(name, sizes, chunks, self.limits.max_file_size)
        # The chunks' bytes by their object names (a keyed store's are not their sha1s).
        names = [rows[sha1].name if sha1 in rows else sha1 for sha1 in chunks]
        return await asyncio.to_thread(bundle_zip.concatenate, self.backend.blobstore, names, checksum)

    async def _artifact_bundle(self, organization_id: int, checksum: str, request: dict[str, Any]) -> None:
        temp, blob = await self._assembled_file(organization_id, checksum, request["chunks"], "artifact-bundle.zip")
        bundle: bundle_zip.Bundle | None = None
        try:
            # Indexed (DESIGN D9): one pass hashes the members; their bytes stay in the zip.
            bundle = await asyncio.to_thread(
                bundle_zip.read_bundle, temp.path, self.backend.blobstore, self.limits, url_required=True, index=True
            )
            manifest = bundle.manifest
            # The request's release and dist win over the manifest's (tasks/assemble.py).
            release = request.get("version") or _string(manifest.get("release"))
            dist = request.get("dist") or _string(manifest.get("dist")) if release else None
            members = [m.file for m in bundle.members]
            if not release and not any(f.debug_id for f in members):
                raise BundleError("uploading a bundle without debug ids or release is prohibited")
            if not members:
                return  # Sentry discards a bundle with no artifacts.
            saved = await save_artifact_bundle(
                self.backend,
                organization_id=organization_id,
                bundle_id=bundle_zip.bundle_id_for(manifest, checksum),
                bundle_blob=blob,
                release=release,
                dist=dist or None,
                project_ids=request["projects"],
                files=members,
                staged=_staged(temp, blob, bundle),
            )
            log.info("stored artifact bundle %s (%d files, release %r)", saved.bundle_id, saved.file_count, release)
        finally:
            await asyncio.to_thread(_discard_leftovers, temp, bundle)

    async def _release_bundle(self, organization_id: int, checksum: str, request: dict[str, Any]) -> None:
        temp, blob = await self._assembled_file(organization_id, checksum, request["chunks"], "release-artifacts.zip")
        bundle: bundle_zip.Bundle | None = None
        try:
            # Sentry's messages from before release archives (tasks/assemble.py, 2021).
            bundle = await asyncio.to_thread(
                bundle_zip.read_bundle,
                temp.path,
                self.backend.blobstore,
                self.limits,
                url_required=False,
                invalid="failed to extract bundle",
                bad_manifest="failed to open release manifest",
                # Stored whole and indexed, as artifact bundles are (DESIGN D9).
                index=True,
            )
            manifest = bundle.manifest
            async with self.backend.catalog.read() as tx:
                org = await tx.organizations.get(str(request["organization"]))
                if org is None or manifest.get("org") != org.slug:
                    raise BundleError("organization does not match uploaded bundle")
                if manifest.get("release") != request["version"]:
                    raise BundleError("release does not match uploaded bundle")
                release = await tx.releases.get(organization_id, request["version"])
            if release is None:
                raise BundleError("release does not exist")
            try:
                await upsert_release_bundle(
                    self.backend,
                    release=release,
                    dist=_string(manifest.get("dist")),
                    bundle_blob=blob,
                    files=[(m.file.url, m.file) for m in bundle.members],
                    staged=_staged(temp, blob, bundle),
                )
            except ReleaseGone:
                raise BundleError("release does not exist") from None
        finally:
            await asyncio.to_thread(_discard_leftovers, temp, bundle)


def _stamp(moment: datetime) -> str:
    stamp = ts(moment)
    assert stamp is not None
    return stamp


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _staged(temp: StagedBlob, blob: StoredBlob, bundle: bundle_zip.Bundle) -> list[tuple[StagedBlob, StoredBlob]]:
    """What an assembly puts into the blob store: the zip, and members extracted on their own."""
    return [(temp, blob), *((m.temp, m.file.blob) for m in bundle.members if m.temp is not None)]


def _discard_leftovers(temp: StagedBlob, bundle: bundle_zip.Bundle | None) -> None:
    """Temp files not renamed into the store (after a failure, or the release bundle's zip)."""
    if not temp.consumed:
        temp.discard()
    if bundle is not None:
        for member in bundle.members:
            if member.temp is not None and not member.temp.consumed:
                member.temp.discard()


# --- the two assemble endpoints -------------------------------------------------------------


def _not_found(missing: list[str]) -> dict[str, Any]:
    return {"state": "not_found", "missingChunks": missing}


def _cached(state: str, detail: str | None) -> dict[str, Any]:
    return {"state": state, "detail": detail, "missingChunks": []}


async def assemble_artifact_bundle(
    assembler: Assembler, found: Organization | None, org_ref: str, data: dict[str, Any]
) -> dict[str, Any]:
    """POST /organizations/{org}/artifactbundle/assemble/ after schema validation (newest order).

    `found` is None for an organization this request creates on first use, with its projects.
    """
    backend = assembler.backend
    refs: list[str] = data["projects"]
    if not refs:
        raise chunk_error("You need to specify at least one project")
    org, projects = await resolve_bundle_projects(backend, found, org_ref, refs)
    checksum: str = data["checksum"]
    chunks: list[str] = data["chunks"]
    # The question 3.x and 2.x with artifact_bundles_v2 ask first: exactly the chunks the org lacks.
    version, dist = data.get("version"), data.get("dist")
    async with backend.catalog.read() as tx:
        missing = sorted(set(chunks) - await tx.chunks.owned(org.id, chunks))
        if missing:
            return _not_found(missing)
        stored = await tx.bundles.by_checksum(org.id, checksum)
        same = stored is not None and stored.release == (version or stored.release) and stored.dist == (dist or None)
        if same and stored and {p.id for p in projects} <= await tx.bundles.project_ids(stored.id):
            return _cached("ok", None)
    cached = await assembler.settled_state(org.id, ARTIFACT_BUNDLE, checksum)
    if cached is not None:
        return _cached(*cached)
    if not chunks:
        return _not_found([])
    if dist and not version:
        # Sentry caches `created` before this check, so a retry within 10 minutes answers
        # `created` and never assembles; relserver keeps answering the 400 instead.
        raise chunk_error("You need to specify a release together with a dist")
    request = {"chunks": chunks, "projects": [p.id for p in projects], "version": version, "dist": dist}
    await assembler.start(org.id, ARTIFACT_BUNDLE, checksum, request)
    return await _started(assembler, org.id, ARTIFACT_BUNDLE, checksum)


async def assemble_release_bundle(
    assembler: Assembler, org: Organization, release: Release, data: dict[str, Any]
) -> dict[str, Any]:
    """POST /organizations/{org}/releases/{version}/assemble/: never computes missing chunks."""
    checksum: str = data["checksum"]
    chunks: list[str] = data["chunks"]
    cached = await assembler.settled_state(org.id, RELEASE_BUNDLE, checksum)
    if cached is not None:
        return _cached(*cached)
    if not chunks:
        return _not_found([])
    request = {"chunks": chunks, "organization": org.id, "version": release.version}
    await assembler.start(org.id, RELEASE_BUNDLE, checksum, request)
    return await _started(assembler, org.id, RELEASE_BUNDLE, checksum)


async def _started(assembler: Assembler, organization_id: int, kind: str, checksum: str) -> dict[str, Any]:
    """The answer to the call that started an assembly: its end state when it ends within the
    wait, else `created`, as Sentry answers."""
    settled = await assembler.settled_state(organization_id, kind, checksum)
    if settled is None or settled[0] in IN_PROGRESS:
        return {"state": "created", "missingChunks": []}
    return _cached(*settled)


async def resolve_bundle_projects(
    backend: Backend, found: Organization | None, org_ref: str, refs: list[str]
) -> tuple[Organization, list[Project]]:
    """Every entry must name a project of the org (ids or slugs); duplicates count as invalid."""
    if len(set(refs)) != len(refs):
        raise chunk_error("One or more projects are invalid")
    try:
        org, projects = await provision(backend, found, org_ref, refs)
    except BadRequest:
        raise chunk_error("One or more projects are invalid") from None
    if len({p.id for p in projects}) != len(refs):
        raise chunk_error("One or more projects are invalid")
    return org, projects
