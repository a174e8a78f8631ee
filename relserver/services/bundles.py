"""Artifact bundles as their own resource (api/endpoints/artifact_bundles.py,
project_artifact_bundle_files.py): list, delete, a bundle's files, one member."""

from __future__ import annotations

from .. import sentry
from ..errors import BadRequest, NotFound
from ..models import ArtifactBundle, BundleFile, Organization, Project
from .context import Backend, blob_unlinker

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
    found = await backend.store.list_artifact_bundles(
        org.id, project.id, query=query, order=sort, offset=page.offset, limit=page.limit + 1
    )
    return found[: page.limit], len(found) > page.limit


async def delete_artifact_bundle(backend: Backend, org: Organization, project: Project, bundle_id: str | None) -> None:
    """Unlink this project; the bundle goes when no project keeps it. An unknown id is fine."""
    if bundle_id is None:
        raise NotFound({"error": f"Supplied an invalid bundle_id {bundle_id}"})
    removed = await backend.store.remove_artifact_bundle(org.id, project.id, bundle_id, blob_unlinker(backend))
    if removed is False:
        raise NotFound(
            {"error": f"Artifact bundle with {bundle_id} found but it is not connected to project {project.id}"}
        )


async def bound_bundle(backend: Backend, org: Organization, project: Project, bundle_id: str) -> ArtifactBundle:
    bundle = await backend.store.get_artifact_bundle(org.id, project.id, bundle_id)
    if bundle is None:
        raise BadRequest(
            {"error": f"The artifact bundle with {bundle_id} is not bound to this project or doesn't exist"}
        )
    return bundle


async def list_bundle_files(
    backend: Backend, bundle: ArtifactBundle, page: sentry.Page, *, query: str | None
) -> tuple[list[BundleFile], bool]:
    files = await backend.store.list_bundle_files(bundle.id, query=query, offset=page.offset, limit=page.limit + 1)
    return files[: page.limit], len(files) > page.limit


async def bundle_member(backend: Backend, bundle: ArtifactBundle, path: str) -> BundleFile:
    entry = await backend.store.get_bundle_file(bundle.id, path)
    if entry is None:
        raise NotFound({"error": f"The file {path} can't be found in the artifact bundle"})
    return entry
