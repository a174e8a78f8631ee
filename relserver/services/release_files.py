"""Release files: Sentry's upload in its validation order, the list (classic files, then
artifact-bundle members as archive entries), detail, rename and deletes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from .. import sentry
from ..errors import BadRequest, Conflict, NotFound
from ..ingest.release_file import UploadForm
from ..models import BundleFile, NewBundleFile, Organization, Project, Release, ReleaseFile, StoredBlob
from ..storage.blobs import StagedBlob
from ..storage.catalog import DuplicateReleaseFile, NewReleaseFile, ReadTx, ReleaseGone
from ..storage.sql.dialect import ts, utcnow
from .context import Backend, blob_writes, release_blobs


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
        return await backend.uploads.add(
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
    wanted = page.limit + 1
    async with backend.catalog.read() as tx:
        classic = await tx.files.page(
            release.id, offset=page.offset, limit=wanted, queries=queries, checksums=checksums
        )
        found: list[ReleaseFile | BundleFile] = list(classic)
        if len(found) < wanted:
            if classic:
                archive_offset = 0
            else:
                classic_total = await tx.files.count(release.id, queries=queries, checksums=checksums)
                archive_offset = page.offset - classic_total
            found += await tx.archive.page(
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
    async with backend.catalog.read() as tx:
        release_file = await tx.files.get(release.id, file_id)
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
    async with backend.catalog.read() as tx:
        if file_id.dist is not None and not await _release_has_dist(tx, org, release, file_id.dist):
            raise NotFound()
        entry = await tx.archive.get(org.id, release.version, file_id.dist, file_id.url)
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
        async with backend.catalog.write() as tx:
            found, dist = await tx.files.dist_of(release.id, file_id)
            if not found:
                raise NotFound()
            # The ident follows the new name and the file's own dist.
            await tx.files.rename(file_id, name, sentry.release_file_ident(name, dist))
    except DuplicateReleaseFile:
        # Sentry lets the unique constraint surface as a 500 here; the upload's 409 says what happened.
        raise Conflict(sentry.FILE_EXISTS) from None
    return await get_release_file(backend, release, raw_id)


async def delete_release_file(backend: Backend, org: Organization, release: Release, raw_id: str) -> None:
    file_id = sentry.decode_file_id(raw_id)
    if file_id is None:
        raise NotFound()
    async with backend.catalog.write() as tx:
        if isinstance(file_id, sentry.ArchiveEntryId):
            if file_id.dist is not None and not await _release_has_dist(tx, org, release, file_id.dist):
                raise NotFound()
            removed, candidates = await tx.archive.remove(org.id, release.version, file_id.dist, file_id.url)
            if not removed:
                # No bundle of the release holds this URL: Sentry answers with an empty body.
                raise NotFound(None)
        else:
            candidates = set(await tx.files.blobs_of(release.id, file_id))
            if not await tx.files.delete(release.id, file_id):
                raise NotFound()
        await release_blobs(backend, tx, candidates)


async def delete_all_release_files(backend: Backend, org: Organization, project: Project | None, version: str) -> None:
    """sentry-cli's `releases files V delete --all` (SourceMapsEndpoint.delete, api/endpoints/debug_files.py).

    Sentry has only the project route; the organization twin (which sentry-cli calls without
    `-p`) skips the project link check.
    """
    if not version:
        raise NotFound(None)
    async with backend.catalog.write() as tx:
        release = await tx.releases.get(org.id, version)
        linked = release is not None and (project is None or await tx.releases.is_linked(release.id, project.id))
        if release is None or not linked:
            raise NotFound("The provided release does not exist")
        # The bundles go whole, so their own listing never shows an emptied bundle.
        bundles = await tx.bundles.of_release(org.id, release.version)
        candidates = [*await tx.files.blobs_of(release.id), *(b.checksum for b in bundles)]
        for bundle in bundles:
            candidates += await tx.bundles.member_blobs(bundle.id)
            await tx.bundles.delete(bundle.id)
        await tx.files.delete(release.id)
        await release_blobs(backend, tx, candidates)


async def _release_has_dist(tx: ReadTx, org: Organization, release: Release, dist: str) -> bool:
    """A dist exists for a release when a file or a bundle names it."""
    return await tx.files.dist_exists(release.id, dist) or await tx.bundles.has_dist(org.id, release.version, dist)


async def upsert_release_bundle(
    backend: Backend,
    *,
    release: Release,
    dist: str | None,
    bundle_blob: StoredBlob,
    files: Sequence[tuple[str, NewBundleFile]],
    staged: Sequence[tuple[StagedBlob, StoredBlob]],
) -> None:
    """A release bundle's (name, member) pairs as release files: existing ones get the new
    content, the rest are created (Sentry's assembly before release archives, tasks/assemble.py:
    no 409). Raises ReleaseGone, before any blob row is written, if the release went meanwhile.

    A member with a `zip_range` is read from the bundle's zip, `bundle_blob`; one without has
    its own blob (DESIGN D9)."""
    now = ts(utcnow())
    assert now is not None
    async with blob_writes(backend, staged) as writes, backend.catalog.write() as tx:
        await tx.releases.require(release.id)
        # `staged` holds the zip and every member kept on its own: their rows come with them.
        await writes.reference(tx)
        dist_id = await tx.files.ensure_dist(release.id, dist, now) if dist else None
        # The zip stays a blob only while a file reads from it (an all-extracted one goes).
        candidates = [bundle_blob.sha1]
        for name, member in files:
            old = await tx.files.upsert(
                NewReleaseFile(
                    organization_id=release.organization_id,
                    release_id=release.id,
                    dist_id=dist_id,
                    name=name,
                    ident=sentry.release_file_ident(name, dist),
                    headers=member.headers,
                    sha1=member.blob.sha1,
                    size=member.blob.size,
                    blob_sha1=bundle_blob.sha1 if member.zip_range else member.blob.sha1,
                    date_created=now,
                    zip_range=member.zip_range,
                )
            )
            if old is not None:
                candidates.append(old)
        await release_blobs(backend, tx, candidates)
