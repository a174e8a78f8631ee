"""What the API does, one function per operation, between the handlers and the store.

Handlers parse the request and serialize the answer; these functions decide: provisioning
(DESIGN D3), release lookups, and the upload commit. No HTTP objects, no SQL.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import auth, sentry
from .auth import check_organization
from .blobstore import BlobStore, SweepReport, TempBlob
from .config import Config
from .errors import BadRequest, Conflict, NotFound, PermissionDenied
from .ingest.chunks import ReceivedChunk, check_checksums
from .ingest.release_file import UploadForm
from .models import BundleFile, Organization, Project, Release, ReleaseFile, ReleaseView, StoredBlob, Token
from .store import DuplicateReleaseFile, ReleaseGone, Store, UnlinkBlobs

log = logging.getLogger(__name__)

# Sentry's message when a `projects` entry is unknown or not accessible (organization_releases.py).
INVALID_PROJECTS = "Invalid project ids or slugs"


@dataclass(frozen=True, slots=True)
class Backend:
    """The server's state as the operations see it."""

    config: Config
    store: Store
    blobstore: BlobStore


async def find_organization(
    backend: Backend, token: Token, ref: str, *, creatable: bool = False
) -> Organization | None:
    """The organization named in the path: 403 for a token bound elsewhere, 404 if unknown.

    None when it does not exist yet but the request may create it on first use (DESIGN D3):
    only requests that create something pass `creatable`, and they create it (`provision`)
    once everything else about them has been checked, so a GET or a failed request never
    leaves an organization behind.
    """
    org = await backend.store.get_organization(ref)
    if org is not None:
        check_organization(token, org.slug)
        return org
    check_organization(token, ref)
    if creatable and backend.config.auto_create and sentry.is_valid_org_slug(ref):
        return None
    raise NotFound()


async def resolve_organization(backend: Backend, token: Token, ref: str) -> Organization:
    """An organization that must exist already (every request that creates nothing)."""
    org = await find_organization(backend, token, ref)
    assert org is not None
    return org


async def find_project(
    backend: Backend, org: Organization | None, ref: str, *, creatable: bool = False
) -> Project | None:
    """The project named in the path, 404 if unknown; None when a creating request may create it."""
    project = await backend.store.get_project(org.id, ref) if org is not None else None
    if project is not None:
        return project
    if creatable and backend.config.auto_create and sentry.is_valid_project_slug(ref):
        return None
    raise NotFound()


async def provision(
    backend: Backend, org: Organization | None, org_ref: str, project_refs: Sequence[str] = ()
) -> tuple[Organization, list[Project]]:
    """Create on first use what a request that has passed every check names (DESIGN D3).

    The organization is created only when every project named is one it could hold, so an
    invalid `projects` entry leaves nothing behind.
    """
    if org is None:
        if not all(sentry.is_valid_project_slug(ref) for ref in project_refs):
            raise BadRequest({"projects": [INVALID_PROJECTS]})
        org = await backend.store.ensure_organization(org_ref)
        log.info("created organization %r on first use", org.slug)
    projects = await resolve_release_projects(backend, org, list(project_refs)) if project_refs else []
    return org, projects


async def find_release_scope(
    backend: Backend, token: Token, org_ref: str, project_ref: str | None, version: str
) -> tuple[Organization, Release] | None:
    """The common case in one query: everything exists. None sends callers the long way."""
    found = await backend.store.lookup_release_scope(org_ref, project_ref, version)
    if found is None:
        return None
    org, project, release, linked = found
    check_organization(token, org.slug)
    if project is not None and not linked:
        raise NotFound()
    return org, release


async def resolve_project(backend: Backend, org: Organization, ref: str) -> Project:
    project = await find_project(backend, org, ref)
    assert project is not None
    return project


async def resolve_release_projects(backend: Backend, org: Organization, refs: list[str]) -> list[Project]:
    """The `projects` of a release-create body; unknown ones are created only when allowed."""
    found: dict[str, Project] = {}
    missing = []
    for ref in dict.fromkeys(refs):
        project = await backend.store.get_project(org.id, ref)
        if project is not None:
            found[ref] = project
        elif backend.config.auto_create and sentry.is_valid_project_slug(ref):
            missing.append(ref)
        else:
            raise BadRequest({"projects": [INVALID_PROJECTS]})
    if missing:
        for project in await backend.store.ensure_projects(org.id, missing):
            found[project.slug] = project
            log.info("created project %r in %r on first use", project.slug, org.slug)
    return [found[ref] for ref in dict.fromkeys(refs)]


async def get_release(backend: Backend, org: Organization, version: str, project: Project | None = None) -> Release:
    """A release by version; at project scope it must also be linked to that project."""
    release = await backend.store.get_release(org.id, version)
    if release is None:
        raise NotFound()
    if project is not None and not await backend.store.is_release_linked(release.id, project.id):
        raise NotFound()
    return release


@dataclass(frozen=True, slots=True)
class ReleaseFields:
    ref: str | None = None
    url: str | None = None
    date_released: datetime | None = None
    user_agent: str | None = None


async def create_release(
    backend: Backend, org: Organization, version: str, projects: list[Project], fields: ReleaseFields
) -> tuple[ReleaseView, bool]:
    """Get or create, link projects; True when created or newly linked (201, else 208)."""
    release, changed = await backend.store.create_release(
        org.id,
        version,
        [p.id for p in projects],
        ref=fields.ref,
        url=fields.url,
        user_agent=fields.user_agent,
        date_released=fields.date_released,
    )
    return await backend.store.release_view(release), changed


async def upload_release_file(backend: Backend, org: Organization, release: Release, form: UploadForm) -> ReleaseFile:
    """Validate in Sentry's newest order, then commit blob and row (project_release_files.py)."""
    upload = form.file
    if upload is None:
        raise BadRequest(sentry.MISSING_FILE)
    # `name` wins when present, even empty; else the part's (already basenamed) filename.
    # A repeated field reads as its last value, as Django's QueryDict.get does.
    names = form.fields.getall("name", [])
    full_name = names[-1] if names else upload.filename
    sentry.validate_file_name(full_name)
    headers = sentry.parse_header_fields(upload.content_type, form.fields.getall("header", []))
    dists = form.fields.getall("dist", [])
    dist = dists[-1] if dists else ""
    sentry.validate_dist(dist)

    async def commit_blob() -> StoredBlob:
        return await asyncio.to_thread(upload.content.store, backend.blobstore)

    try:
        return await backend.store.insert_release_file(
            organization_id=org.id,
            release_id=release.id,
            name=full_name,
            ident=sentry.release_file_ident(full_name, dist or None),
            dist=dist or None,
            headers=headers,
            commit_blob=commit_blob,
        )
    except DuplicateReleaseFile:
        raise Conflict(sentry.FILE_EXISTS) from None
    except ReleaseGone:
        # Deleted while the body was read: the answer a lookup a moment later would give.
        raise NotFound() from None


async def bootstrap_tokens(store: Store, config: Config) -> str | None:
    """Register the pinned token, and mint an admin token on a first start (DESIGN D2).

    Returns the newly minted token (to be shown once), or None.
    """
    if config.token:
        await store.insert_token(
            token_hash=auth.hash_token(config.token),
            label="pinned (--token / RELSERVER_TOKEN)",
            scopes=auth.ADMIN_SCOPES,
            organization=None,
            kind=auth.token_kind(config.token),
            last_characters=config.token[-4:],
        )
    if await store.count_tokens():
        return None
    token = auth.new_user_token()
    await store.insert_token(
        token_hash=auth.hash_token(token),
        label="admin (created on first start)",
        scopes=auth.ADMIN_SCOPES,
        organization=None,
        kind="user",
        last_characters=token[-4:],
    )
    await asyncio.to_thread(write_secret_file, config.admin_token_path, token)
    log.info("created the admin token; it is in %s", config.admin_token_path)
    return token


async def sweep_leftovers(store: Store, blobstore: BlobStore) -> SweepReport:
    """Prune unreferenced blob rows, then remove unreferenced blob files and stale temp files.

    Start-up and `relserver vacuum` run this, only while they hold the data dir's lock: with
    no other process on the data dir, every relserver temp file is a leftover of a crash and
    every unreferenced blob one of a delete interrupted mid-way (DESIGN invariants 1, 10).
    """
    pruned, referenced = await store.prune_blob_rows()
    return await asyncio.to_thread(blobstore.sweep, referenced, blob_rows=pruned)


def write_secret_file(path: Path, content: str) -> None:
    """Write a file only its owner can read (mode 0600 from the start, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content + "\n")
    os.chmod(path, 0o600)


# --- release files: list, detail, rename, delete ----------------------------------------------


def blob_unlinker(backend: Backend) -> UnlinkBlobs:
    async def unlink(sha1s: list[str]) -> None:
        await asyncio.to_thread(backend.blobstore.delete_many, sha1s)

    return unlink


async def list_release_files(
    backend: Backend,
    org: Organization,
    release: Release,
    page: sentry.Page,
    *,
    queries: list[str],
    checksums: list[str],
) -> tuple[list[ReleaseFile | BundleFile], bool]:
    """One page and whether another follows (fetched as one extra row).

    Classic files by name come first, then the members of artifact bundles tied to the
    release (as Sentry appends its release-archive entries after the classic files). The
    classic rows are counted only when a page reaches past them.
    """
    store = backend.store
    wanted = page.limit + 1
    classic = await store.list_release_files(
        release.id, offset=page.offset, limit=wanted, queries=queries, checksums=checksums
    )
    found: list[ReleaseFile | BundleFile] = list(classic)
    if len(found) < wanted:
        if classic:
            archive_offset = 0
        else:
            classic_total = await store.count_release_files_matching(release.id, queries=queries, checksums=checksums)
            archive_offset = page.offset - classic_total
        found += await store.list_archive_entries(
            org.id,
            release.version,
            offset=archive_offset,
            limit=wanted - len(found),
            queries=queries,
            checksums=checksums,
        )
    return found[: page.limit], len(found) > page.limit


def file_json(item: ReleaseFile | BundleFile) -> dict[str, Any]:
    if isinstance(item, BundleFile):
        return sentry.archive_entry_json(item)
    return sentry.release_file_json(item)


async def get_release_file(backend: Backend, release: Release, raw_id: str) -> ReleaseFile:
    file_id = sentry.decode_file_id(raw_id)
    if not isinstance(file_id, int):
        raise NotFound()
    release_file = await backend.store.get_release_file(release.id, file_id)
    if release_file is None:
        raise NotFound()
    return release_file


async def get_any_release_file(
    backend: Backend, org: Organization, release: Release, raw_id: str
) -> ReleaseFile | BundleFile:
    """A classic file by integer id, or an artifact-bundle member by Sentry's base64 id."""
    file_id = sentry.decode_file_id(raw_id)
    if not isinstance(file_id, sentry.ArchiveEntryId):
        return await get_release_file(backend, release, raw_id)
    store = backend.store
    if file_id.dist is not None and not await store.release_has_dist(org.id, release.id, release.version, file_id.dist):
        raise NotFound()
    entry = await store.get_archive_entry(org.id, release.version, file_id.dist, file_id.url)
    if entry is None:
        raise NotFound()
    return entry


async def rename_release_file(backend: Backend, release: Release, raw_id: str, data: Any) -> ReleaseFile:
    """Sentry's order: integer id, then existence, then the body (project_release_file_details.py)."""
    try:
        file_id = int(raw_id)
    except ValueError:
        # Archive entries cannot be renamed.
        raise BadRequest("Can only update release files with integer IDs") from None
    await get_release_file(backend, release, raw_id)
    name = sentry.validate_rename(sentry.expect_object(data))
    try:
        found = await backend.store.rename_release_file(release.id, file_id, name, sentry.release_file_ident)
    except DuplicateReleaseFile:
        # Sentry lets the unique constraint surface as a 500 here; the upload's 409 says what happened.
        raise Conflict(sentry.FILE_EXISTS) from None
    if not found:
        raise NotFound()
    return await get_release_file(backend, release, raw_id)


async def delete_release_file(backend: Backend, org: Organization, release: Release, raw_id: str) -> None:
    file_id = sentry.decode_file_id(raw_id)
    if file_id is None:
        raise NotFound()
    store = backend.store
    if isinstance(file_id, sentry.ArchiveEntryId):
        if file_id.dist is not None and not await store.release_has_dist(
            org.id, release.id, release.version, file_id.dist
        ):
            raise NotFound()
        removed = await store.delete_archive_entries(
            org.id, release.version, file_id.dist, file_id.url, blob_unlinker(backend)
        )
        if not removed:
            # No bundle of the release holds this URL: Sentry answers with an empty body.
            raise NotFound(None)
        return
    if not await store.delete_release_file(release.id, file_id, blob_unlinker(backend)):
        raise NotFound()


async def delete_all_release_files(backend: Backend, org: Organization, project: Project | None, version: str) -> None:
    """sentry-cli's `releases files V delete --all` (SourceMapsEndpoint.delete, api/endpoints/debug_files.py).

    Sentry has only the project route; the organization twin (which sentry-cli calls without
    `-p`) skips the project link check.
    """
    if not version:
        raise NotFound(None)
    release = await backend.store.get_release(org.id, version)
    linked = release is not None and (project is None or await backend.store.is_release_linked(release.id, project.id))
    if release is None or not linked:
        raise NotFound("The provided release does not exist")
    await backend.store.delete_release_files(release, blob_unlinker(backend))


# --- releases -------------------------------------------------------------------------------


async def requested_projects(backend: Backend, org: Organization, project_ids: set[int]) -> list[int]:
    """The `project` ids of an organization list, checked as OrganizationEndpoint.get_projects does:
    every requested id must be a project of the organization (else 403); -1 alone means all."""
    if not project_ids or project_ids == sentry.ALL_ACCESS_PROJECTS:
        return []
    known = {p.id for p in await backend.store.list_projects(org.id)}
    if not project_ids <= known:
        raise PermissionDenied()
    return sorted(project_ids)


async def list_releases(
    backend: Backend,
    org: Organization,
    page: sentry.Page,
    *,
    project: Project | None,
    query: str | None,
    status: str,
    in_projects: list[int] | None = None,
) -> tuple[list[ReleaseView], bool]:
    releases = await backend.store.list_releases(
        org.id,
        project_id=project.id if project else None,
        in_projects=in_projects or (),
        query=query,
        status=status,
        offset=page.offset,
        limit=page.limit + 1,
    )
    views = [await backend.store.release_view(r) for r in releases[: page.limit]]
    return views, len(releases) > page.limit


async def update_release(
    backend: Backend, release: Release, fields: ReleaseFields, status: str | None, projects: list[Project]
) -> ReleaseView:
    try:
        updated = await backend.store.update_release(
            release.id,
            ref=fields.ref,
            url=fields.url,
            date_released=fields.date_released,
            status=status,
            project_ids=[p.id for p in projects],
        )
    except ReleaseGone:
        raise NotFound() from None
    return await backend.store.release_view(updated)


async def delete_release(backend: Backend, release: Release) -> None:
    await backend.store.delete_release(release.id, blob_unlinker(backend))


# --- chunk upload ---------------------------------------------------------------------------


async def store_chunks(backend: Backend, org: Organization | None, org_ref: str, chunks: list[ReceivedChunk]) -> None:
    """Check every checksum, then commit the chunks as blobs the organization owns (creating
    it on first use only now that the chunks are known to be good)."""
    try:
        check_checksums(chunks)
        if not chunks:
            return
        org, _ = await provision(backend, org, org_ref)
        pairs = [(c.temp, c.blob) for c in chunks]

        async def commit() -> None:
            await asyncio.to_thread(backend.blobstore.commit_many, pairs)

        await backend.store.add_chunks(org.id, [c.blob for c in chunks], commit)
    finally:
        leftovers = [c.temp for c in chunks if not c.temp.consumed]
        if leftovers:
            await asyncio.to_thread(_discard_temps, leftovers)


def _discard_temps(temps: list[TempBlob]) -> None:
    for temp in temps:
        temp.discard()
