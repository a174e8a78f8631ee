"""Artifact bundles as their own resource (api/endpoints/artifact_bundles.py,
project_artifact_bundle_files.py): list, delete, a bundle's files, one member."""

from __future__ import annotations

from collections.abc import Sequence

from .. import sentry
from ..errors import BadRequest, NotFound
from ..models import ArtifactBundle, BundleFile, NewBundleFile, Organization, Project, StoredBlob
from ..storage.blobs import StagedBlob
from ..storage.sql.dialect import ts, utcnow
from .context import Backend, blob_writes, release_blobs

# The two orders ArtifactBundlesEndpoint sorts by, each either way.
BUNDLE_SORTS = ("date_added", "-date_added", "date_modified", "-date_modified")


async def list_artifact_bundles(
    backend: Backend, org: Organization, project: Project, page: sentry.Page, *, query: str | None, sort: str
) -> tuple[list[ArtifactBundle], bool]:
    if sort not in BUNDLE_SORTS:
        # InvalidSortByParameter is a SentryAPIException: its detail is an object.
        raise BadRequest(
            {
                "detail": {
                    "code": "invalid_sort_by_parameter",
                    "message": "You can either sort via 'date_added' or 'date_modified'",
                    "extra": {},
                }
            }
        )
    async with backend.catalog.read() as tx:
        found = await tx.bundles.page(
            org.id, project.id, query=query, order=sort, offset=page.offset, limit=page.limit + 1
        )
    return found[: page.limit], len(found) > page.limit


async def delete_artifact_bundle(backend: Backend, org: Organization, project: Project, bundle_id: str | None) -> None:
    """Unlink this project; the bundle goes when no project keeps it. An unknown id is fine."""
    if bundle_id is None:
        raise NotFound({"error": f"Supplied an invalid bundle_id {bundle_id}"})
    async with backend.catalog.write() as tx:
        bundle = await tx.bundles.by_bundle_id(org.id, bundle_id)
        if bundle is None:
            return
        if not await tx.bundles.unlink(bundle.id, project.id):
            raise NotFound(
                {"error": f"Artifact bundle with {bundle_id} found but it is not connected to project {project.id}"}
            )
        if not await tx.bundles.project_ids(bundle.id):
            candidates = [*await tx.bundles.member_blobs(bundle.id), bundle.checksum]
            await tx.bundles.delete(bundle.id)
            await release_blobs(backend, tx, candidates)


async def bound_bundle(backend: Backend, org: Organization, project: Project, bundle_id: str) -> ArtifactBundle:
    async with backend.catalog.read() as tx:
        bundle = await tx.bundles.get(org.id, project.id, bundle_id)
    if bundle is None:
        raise BadRequest(
            {"error": f"The artifact bundle with {bundle_id} is not bound to this project or doesn't exist"}
        )
    return bundle


async def list_bundle_files(
    backend: Backend, bundle: ArtifactBundle, page: sentry.Page, *, query: str | None
) -> tuple[list[BundleFile], bool]:
    async with backend.catalog.read() as tx:
        files = await tx.members.page(bundle.id, query=query, offset=page.offset, limit=page.limit + 1)
    return files[: page.limit], len(files) > page.limit


async def bundle_member(backend: Backend, bundle: ArtifactBundle, path: str) -> BundleFile:
    async with backend.catalog.read() as tx:
        entry = await tx.members.get(bundle.id, path)
    if entry is None:
        raise NotFound({"error": f"The file {path} can't be found in the artifact bundle"})
    return entry


async def save_artifact_bundle(
    backend: Backend,
    *,
    organization_id: int,
    bundle_id: str,
    bundle_blob: StoredBlob,
    release: str | None,
    dist: str | None,
    project_ids: Sequence[int],
    files: Sequence[NewBundleFile],
    staged: Sequence[tuple[StagedBlob, StoredBlob]],
) -> ArtifactBundle:
    """Store an assembled bundle: its zip `bundle_blob` (and any member kept on its own, from
    `staged`) into the blob store, then its rows; the same bundle id again replaces its content.

    One transaction (DESIGN D9). The zip is a blob itself: artifact lookup serves it and
    indexed members are read from it."""
    now = ts(utcnow())
    assert now is not None
    # `staged` holds the zip and every member kept on its own: their rows come with them.
    async with blob_writes(backend, staged) as writes, backend.catalog.write() as tx:
        await writes.reference(tx)
        existing = await tx.bundles.by_bundle_id(organization_id, bundle_id)
        candidates: list[str] = []
        if existing is not None:
            candidates = [*await tx.bundles.member_blobs(existing.id), existing.checksum]
            await tx.bundles.replace(existing.id, bundle_blob.sha1, release, dist, now)
            pk = existing.id
        else:
            pk = await tx.bundles.create(organization_id, bundle_id, bundle_blob.sha1, release, dist, now)
        await tx.bundles.link(pk, project_ids)
        await tx.bundles.add_members(pk, bundle_blob.sha1, files)
        await release_blobs(backend, tx, candidates)
        saved = await tx.bundles.by_pk(pk)
    assert saved is not None
    return saved
