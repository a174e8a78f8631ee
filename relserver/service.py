"""What the API does, one function per operation, between the handlers and the store.

Handlers parse the request and serialize the answer; these functions decide: provisioning
(DESIGN D3), release lookups, and the upload commit. No HTTP objects, no SQL.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import auth, sentry
from .auth import check_organization
from .blobstore import BlobStore
from .config import Config
from .errors import BadRequest, Conflict, NotFound
from .models import Organization, Project, Release, ReleaseFile, Token
from .store import DuplicateReleaseFile, Store, UnlinkBlobs
from .upload import UploadForm

log = logging.getLogger(__name__)

# Sentry's message when a `projects` entry is unknown or not accessible (organization_releases.py).
INVALID_PROJECTS = "Invalid project ids or slugs"


@dataclass(frozen=True, slots=True)
class Backend:
    """The server's state as the operations see it."""

    config: Config
    store: Store
    blobstore: BlobStore


async def resolve_organization(backend: Backend, token: Token, ref: str) -> Organization:
    """The organization named in the path: 403 for a token bound elsewhere, 404 if unknown."""
    org = await backend.store.get_organization(ref)
    if org is not None:
        check_organization(token, org.slug)
        return org
    check_organization(token, ref)
    if backend.config.auto_create and sentry.is_valid_org_slug(ref):
        org = await backend.store.ensure_organization(ref)
        log.info("created organization %r on first use", org.slug)
        return org
    raise NotFound()


async def resolve_project(backend: Backend, org: Organization, ref: str) -> Project:
    project = await backend.store.get_project(org.id, ref)
    if project is not None:
        return project
    if backend.config.auto_create and sentry.is_valid_project_slug(ref):
        (project,) = await backend.store.ensure_projects(org.id, [ref])
        log.info("created project %r in %r on first use", project.slug, org.slug)
        return project
    raise NotFound()


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
) -> tuple[Release, bool, list[Project]]:
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
    return release, changed, await backend.store.release_projects(release.id)


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

    async def commit_blob() -> None:
        await asyncio.to_thread(backend.blobstore.commit, upload.temp, upload.blob)

    try:
        return await backend.store.insert_release_file(
            organization_id=org.id,
            release_id=release.id,
            name=full_name,
            ident=sentry.release_file_ident(full_name, dist or None),
            dist=dist or None,
            headers=headers,
            blob=upload.blob,
            commit_blob=commit_blob,
        )
    except DuplicateReleaseFile:
        raise Conflict(sentry.FILE_EXISTS) from None


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
    backend: Backend, release: Release, page: sentry.Page, *, queries: list[str], checksums: list[str]
) -> tuple[list[ReleaseFile], bool]:
    """One page and whether another follows (fetched as one extra row)."""
    files = await backend.store.list_release_files(
        release.id, offset=page.offset, limit=page.limit + 1, queries=queries, checksums=checksums
    )
    return files[: page.limit], len(files) > page.limit


async def get_release_file(backend: Backend, release: Release, raw_id: str) -> ReleaseFile:
    file_id = sentry.decode_file_id(raw_id)
    # Archive entries (base64 ids) only exist for artifact bundles, which are not stored yet.
    if not isinstance(file_id, int):
        raise NotFound()
    release_file = await backend.store.get_release_file(release.id, file_id)
    if release_file is None:
        raise NotFound()
    return release_file


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


async def delete_release_file(backend: Backend, release: Release, raw_id: str) -> None:
    file_id = sentry.decode_file_id(raw_id)
    if file_id is None:
        raise NotFound()
    if isinstance(file_id, sentry.ArchiveEntryId):
        if file_id.dist is not None and not await backend.store.dist_exists(release.id, file_id.dist):
            raise NotFound()
        # No artifact index holds this URL: Sentry answers this 404 with an empty body.
        raise NotFound(None)
    if not await backend.store.delete_release_file(release.id, file_id, blob_unlinker(backend)):
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
    await backend.store.delete_release_files(release.id, blob_unlinker(backend))


# --- releases -------------------------------------------------------------------------------


async def list_releases(
    backend: Backend,
    org: Organization,
    page: sentry.Page,
    *,
    project: Project | None,
    query: str | None,
    status: str,
) -> tuple[list[tuple[Release, list[Project]]], bool]:
    releases = await backend.store.list_releases(
        org.id,
        project_id=project.id if project else None,
        query=query,
        status=status,
        offset=page.offset,
        limit=page.limit + 1,
    )
    return [(r, await backend.store.release_projects(r.id)) for r in releases[: page.limit]], len(releases) > page.limit


async def release_with_projects(backend: Backend, release: Release) -> tuple[Release, list[Project]]:
    return release, await backend.store.release_projects(release.id)


async def update_release(
    backend: Backend, release: Release, fields: ReleaseFields, status: str | None, projects: list[Project]
) -> tuple[Release, list[Project]]:
    updated = await backend.store.update_release(
        release.id,
        ref=fields.ref,
        url=fields.url,
        date_released=fields.date_released,
        status=status,
        project_ids=[p.id for p in projects],
    )
    return await release_with_projects(backend, updated)


async def delete_release(backend: Backend, release: Release) -> None:
    await backend.store.delete_release(release.id, blob_unlinker(backend))
