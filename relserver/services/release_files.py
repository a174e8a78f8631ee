"""Release files: Sentry's upload in its validation order, the list (classic files, then
artifact-bundle members as archive entries), detail, rename and deletes."""

from __future__ import annotations

import asyncio
from typing import Any

from .. import sentry
from ..errors import BadRequest, Conflict, NotFound
from ..ingest.release_file import UploadForm
from ..models import BundleFile, Organization, Project, Release, ReleaseFile, StoredBlob
from ..storage.sqlite import DuplicateReleaseFile, ReleaseGone
from .context import Backend, blob_unlinker


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
