"""Releases: create (get or create, link projects), list, update, delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .. import sentry
from ..errors import NotFound
from ..models import Deploy, Organization, Project, Release, ReleaseView
from ..storage.sqlite import ReleaseGone
from .context import Backend, blob_unlinker


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


async def add_deploy(backend: Backend, release: Release, fields: sentry.DeployFields) -> Deploy:
    """A deploy of the release; one that finished without saying when finished now."""
    try:
        return await backend.store.add_deploy(
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
    found = await backend.store.list_deploys(release.id, offset=page.offset, limit=page.limit + 1)
    return found[: page.limit], len(found) > page.limit


async def organization_projects(backend: Backend, org: Organization) -> list[Project]:
    return await backend.store.list_projects(org.id)


async def release_view(backend: Backend, release: Release) -> ReleaseView:
    """The release with its projects and deploys, as its JSON shows it."""
    return await backend.store.release_view(release)
