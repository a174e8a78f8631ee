"""The artifact lookup: which bundles or release files Sentry's processing would fetch for a
debug id, or a release (and dist) and URL (api/endpoints/artifact_lookup.py)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import sentry
from ..errors import NotFound
from ..models import LookupHit, Organization, Project, ZipRange
from .context import Backend

# query_artifact_bundles_containing_file (debug_files/artifact_bundles.py): MAX_BUNDLES_QUERY.
MAX_BUNDLES_QUERY = 5
# ProjectArtifactLookupEndpoint: MAX_RELEASEFILES_QUERY.
MAX_RELEASEFILES_QUERY = 10


@dataclass(frozen=True, slots=True)
class LookupDownload:
    """The bytes a lookup's `?download=` names: content `sha1`/`size` held by the blob
    `blob_sha1` (at `zip_range` for a file a release bundle brought), and the name to serve."""

    sha1: str
    size: int
    name: str
    blob_sha1: str
    zip_range: ZipRange | None = None


async def artifact_lookup(
    backend: Backend,
    org: Organization,
    project: Project,
    *,
    debug_id: str | None,
    url: str | None,
    version: str | None,
    dist: str | None,
) -> list[LookupHit]:
    """Bundles by debug id first; else bundles of the release (and those indexing the URL);
    with no bundle, release files whose name contains the URL."""
    found: dict[int, str] = {}
    async with backend.catalog.read() as tx:
        if debug_id:
            for bundle in await tx.bundles.with_debug_id(org.id, project.id, debug_id):
                found[bundle.id] = "debug-id"
        if not found and version:
            for bundle in await tx.bundles.for_release(
                org.id, project.id, version, dist, url=None, limit=MAX_BUNDLES_QUERY
            ):
                found[bundle.id] = "release"
            if url:
                for bundle in await tx.bundles.for_release(
                    org.id, project.id, version, dist, url=url, limit=MAX_BUNDLES_QUERY
                ):
                    found[bundle.id] = "index"
        hits = [LookupHit("artifact_bundle", pk, how) for pk, how in sorted(found.items())]
        if not found and version and url:
            # No bundle: Sentry falls back to individual release files whose name contains the URL.
            release = await tx.releases.get(org.id, version)
            if release is not None and await tx.releases.is_linked(release.id, project.id):
                # try_resolve_release_dist (artifact_lookup.py): a dist the release does not
                # have counts as no dist, so only files without one qualify.
                if dist is not None and not await tx.files.dist_exists(release.id, dist):
                    dist = None
                for f in await tx.files.matching_url(release.id, url, dist, MAX_RELEASEFILES_QUERY):
                    hits.append(LookupHit("release_file", f.id, "release-old", abs_path=f.name, headers=f.headers))
    return hits


async def lookup_download(backend: Backend, org: Organization, project: Project, target: str) -> LookupDownload:
    """`artifact_bundle/<pk>` or `release_file/<pk>` of this project; Sentry's empty 404 else."""
    kind, _, raw_pk = target.partition("/")
    pk = sentry.parse_database_id(raw_pk) if raw_pk.isascii() and raw_pk.isdigit() else None
    async with backend.catalog.read() as tx:
        if pk is not None and kind == "artifact_bundle":
            bundle = await tx.bundles.get_by_pk(org.id, project.id, pk)
            if bundle is not None:
                size = (await tx.blobs.sizes([bundle.checksum]))[bundle.checksum]
                return LookupDownload(bundle.checksum, size, f"artifact_bundle_{bundle.bundle_id}.zip", bundle.checksum)
        if pk is not None and kind == "release_file":
            f = await tx.files.get_in_project(project.id, pk)
            if f is not None:
                return LookupDownload(f.sha1, f.size, f.name, f.blob_sha1, f.zip_range)
    raise NotFound(None)
