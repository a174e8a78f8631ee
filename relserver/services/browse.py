"""What the web UI shows besides the API's own resources: organizations and projects with
their counts, a release's counts and dists, where its archive entries came from, and the
members of a project's bundles that carry a debug id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..models import ArtifactBundle, BundleFile, Organization, Project, Release, Token
from ..storage.sql.repos.summaries import ProjectCounts, ReleaseCounts
from .context import Backend

__all__ = ["OrganizationSummary", "ProjectCounts", "ReleaseCounts"]


@dataclass(frozen=True, slots=True)
class OrganizationSummary:
    organization: Organization
    projects: list[tuple[Project, ProjectCounts]]


async def organizations_overview(backend: Backend, token: Token) -> list[OrganizationSummary]:
    """The organizations the token may see (one, for a token bound to an organization)."""
    found = []
    async with backend.catalog.read() as tx:
        for org in await tx.summaries.organizations(token.organization):
            counts = await tx.summaries.project_counts(org.id)
            projects = await tx.projects.of_organization(org.id)
            empty = ProjectCounts(project_id=0, releases=0, release_files=0, bundles=0, last_upload=None)
            found.append(OrganizationSummary(org, [(p, counts.get(p.id, empty)) for p in projects]))
    return found


async def release_counts(backend: Backend, org: Organization, releases: Sequence[Release]) -> dict[int, ReleaseCounts]:
    async with backend.catalog.read() as tx:
        return {r.id: await tx.summaries.release_counts(org.id, r.id, r.version) for r in releases}


async def release_bundles(backend: Backend, org: Organization, release: Release) -> dict[int, ArtifactBundle]:
    """The artifact bundles tied to a release, by primary key: where its archive entries came from."""
    async with backend.catalog.read() as tx:
        return {b.id: b for b in await tx.bundles.of_release(org.id, release.version)}


async def bundle_by_pk(backend: Backend, org: Organization, project: Project, pk: int) -> ArtifactBundle | None:
    async with backend.catalog.read() as tx:
        return await tx.bundles.get_by_pk(org.id, project.id, pk)


async def members_with_debug_id(
    backend: Backend, org: Organization, project: Project, debug_id: str, *, limit: int
) -> list[tuple[ArtifactBundle, BundleFile]]:
    """Bundle members of the project with this debug id, each with its bundle, newest first."""
    async with backend.catalog.read() as tx:
        members = await tx.summaries.members_with_debug_id(org.id, project.id, debug_id, limit=limit)
        bundles = {m.artifact_bundle_id: await tx.bundles.by_pk(m.artifact_bundle_id) for m in members}
    return [(b, m) for m in members if (b := bundles[m.artifact_bundle_id]) is not None]
