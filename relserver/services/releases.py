"""Releases: create (get or create, link projects), list, update, delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .. import sentry
from ..errors import NotFound
from ..models import Deploy, Organization, Project, Release, ReleaseView
from ..storage.catalog import ReadTx, ReleaseGone
from .context import Backend, release_blobs


@dataclass(frozen=True, slots=True)
class ReleaseFields:
    ref: str | None = None
    url: str | None = None
    date_released: datetime | None = None
    user_agent: str | None = None


async def create_release(
    backend: Backend, org: Organization, version: str, projects: list[Project], fields: ReleaseFields
) -> tuple[ReleaseView, bool]:
    """Get or create, link projects; True when created or newly linked (201, else 208).
    `ON CONFLICT DO NOTHING` decides which of two concurrent creates made it, so on a shared
    catalog this needs no lock across processes."""
    async with backend.catalog.write(serialized=False) as tx:
        release, created = await tx.releases.get_or_create(
            org.id,
            version,
            ref=fields.ref,
            url=fields.url,
            user_agent=fields.user_agent,
            date_released=fields.date_released,
        )
        linked = await tx.releases.link(release.id, [p.id for p in projects])
        view = await _view(tx, release)
    return view, created or linked


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
    async with backend.catalog.read() as tx:
        releases = await tx.releases.page(
            org.id,
            project_id=project.id if project else None,
            in_projects=in_projects or (),
            query=query,
            status=status,
            offset=page.offset,
            limit=page.limit + 1,
        )
        views = [await _view(tx, r) for r in releases[: page.limit]]
    return views, len(releases) > page.limit


async def update_release(
    backend: Backend, release: Release, fields: ReleaseFields, status: str | None, projects: list[Project]
) -> ReleaseView:
    """Set the fields given (None leaves one as it is) and link projects."""
    changes = {"ref": fields.ref, "url": fields.url, "date_released": fields.date_released, "status": status}
    try:
        async with backend.catalog.write() as tx:
            await tx.releases.require(release.id)
            updated = await tx.releases.update(release.id, {k: v for k, v in changes.items() if v is not None})
            await tx.releases.link(release.id, [p.id for p in projects])
            return await _view(tx, updated)
    except ReleaseGone:
        raise NotFound() from None


async def delete_release(backend: Backend, release: Release) -> None:
    """The release, its links, dists and files; blobs no other file uses go too."""
    async with backend.catalog.write() as tx:
        candidates = await tx.files.blobs_of(release.id)
        await tx.files.delete(release.id)
        await tx.releases.delete(release.id)
        await release_blobs(backend, tx, candidates)


async def add_deploy(backend: Backend, release: Release, fields: sentry.DeployFields) -> Deploy:
    """A deploy of the release; one that finished without saying when finished now."""
    try:
        async with backend.catalog.write() as tx:
            await tx.releases.require(release.id)
            return await tx.deploys.add(
                release.id,
                environment=fields.environment,
                name=fields.name,
                url=fields.url,
                date_started=fields.date_started,
                date_finished=fields.date_finished or datetime.now(UTC),
            )
    except ReleaseGone:
        raise NotFound() from None  # deleted since the handler looked it up


async def list_deploys(backend: Backend, release: Release, page: sentry.Page) -> tuple[list[Deploy], bool]:
    """One page of the release's deploys, newest finished first, and whether another follows."""
    async with backend.catalog.read() as tx:
        found = await tx.deploys.page(release.id, offset=page.offset, limit=page.limit + 1)
    return found[: page.limit], len(found) > page.limit


async def organization_projects(backend: Backend, org: Organization) -> list[Project]:
    async with backend.catalog.read() as tx:
        return await tx.projects.of_organization(org.id)


async def release_view(backend: Backend, release: Release) -> ReleaseView:
    """The release with its projects and deploys, as its JSON shows it."""
    async with backend.catalog.read() as tx:
        return await _view(tx, release)


async def _view(tx: ReadTx, release: Release) -> ReleaseView:
    latest = await tx.deploys.page(release.id, limit=1)
    return ReleaseView(
        release=release,
        projects=await tx.projects.of_release(release.id),
        deploy_count=await tx.deploys.count(release.id),
        last_deploy=latest[0] if latest else None,
    )
