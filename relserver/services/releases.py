"""Releases: create (get or create, link projects), list, update, delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .. import sentry
from ..errors import BadRequest, NotFound
from ..models import Deploy, Organization, Project, Release, ReleaseCondition, ReleaseView
from ..sentry.commits import CommitFields
from ..storage.catalog import ReadTx, ReleaseGone
from .commits import CommitsOutcome, apply_commit_fields
from .context import Backend, release_blobs

# How many releases of an older data dir one start-up transaction parses (semver columns).
SEMVER_BACKFILL_BATCH = 500


@dataclass(frozen=True, slots=True)
class ReleaseFields:
    ref: str | None = None
    url: str | None = None
    date_released: datetime | None = None
    user_agent: str | None = None


async def create_release(
    backend: Backend,
    org: Organization,
    version: str,
    projects: list[Project],
    fields: ReleaseFields,
    *,
    status: str | None = None,
    commits: CommitFields | None = None,
) -> tuple[ReleaseView, bool]:
    """Get or create, link projects, set commits; True when created or newly linked (201,
    else 208). An existing release takes a `status` that differs (organization_releases.py).
    Refs naming unknown repositories are Sentry's 400, raised once the rest is stored.
    The INSERT's `ON CONFLICT` decides which of two concurrent creates made it, so a plain
    create needs no lock across processes on a shared catalog; one that sets commits
    (which replaces the release's list) stays serialized."""
    async with backend.catalog.write(serialized=commits is not None and commits.given) as tx:
        release, created = await tx.releases.get_or_create(
            org.id,
            version,
            ref=fields.ref,
            url=fields.url,
            user_agent=fields.user_agent,
            date_released=fields.date_released,
            status=status or "open",
            semver=sentry.semver_columns(version),
        )
        if not created and status is not None and status != release.status:
            release = await tx.releases.update(release.id, {"status": status})
        linked = await tx.releases.link(release.id, [p.id for p in projects])
        outcome = CommitsOutcome()
        if commits:
            outcome = await apply_commit_fields(tx, release, commits, update=False)
            release = await tx.releases.update(release.id, {})  # its commit columns, as set
        view = await _view(tx, release)
    _raise_refs_error(outcome)
    return view, created or linked


@dataclass(frozen=True, slots=True)
class ReleaseFilter:
    """What a release list keeps and how it orders them (see Releases.page)."""

    status: str | None = "open"
    conditions: tuple[ReleaseCondition, ...] = ()
    sort: str = "date"
    in_projects: tuple[int, ...] = ()
    environments: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    # The organization list shows only releases of (the requested or any) project:
    # organization_releases.py filters on projects__id__in.
    linked_only: bool = False


async def list_releases(
    backend: Backend, org: Organization, page: sentry.Page, *, project: Project | None, filters: ReleaseFilter
) -> tuple[list[ReleaseView], bool]:
    async with backend.catalog.read() as tx:
        releases = await tx.releases.page(
            org.id,
            project_id=project.id if project else None,
            in_projects=filters.in_projects,
            query=None,
            status=filters.status,
            offset=page.offset,
            limit=page.limit + 1,
            conditions=filters.conditions,
            sort=filters.sort,
            environments=filters.environments,
            start=filters.start,
            end=filters.end,
            linked_only=filters.linked_only,
        )
        views = [await _view(tx, r) for r in releases[: page.limit]]
    return views, len(releases) > page.limit


async def known_environments(backend: Backend, organization_id: int, names: list[str]) -> bool:
    """Whether the organization has every one of these environments (deploys create them)."""
    async with backend.catalog.read() as tx:
        return set(names) <= await tx.deploys.environments(organization_id)


async def backfill_semver(backend: Backend) -> int:
    """Parse the versions of releases stored before the semver columns existed; how many."""
    done = 0
    while True:
        async with backend.catalog.write() as tx:
            batch = await tx.releases.unparsed(SEMVER_BACKFILL_BATCH)
            for release_id, version in batch:
                await tx.releases.set_semver(release_id, sentry.semver_columns(version))
        done += len(batch)
        if len(batch) < SEMVER_BACKFILL_BATCH:
            return done


async def update_release(
    backend: Backend,
    release: Release,
    fields: ReleaseFields,
    status: str | None,
    projects: list[Project],
    commits: CommitFields | None = None,
) -> ReleaseView:
    """Set the fields given (None leaves one as it is), link projects, set commits (a refs
    error is raised after the commit, as on create)."""
    changes = {"ref": fields.ref, "url": fields.url, "date_released": fields.date_released, "status": status}
    try:
        async with backend.catalog.write() as tx:
            await tx.releases.require(release.id)
            updated = await tx.releases.update(release.id, {k: v for k, v in changes.items() if v is not None})
            await tx.releases.link(release.id, [p.id for p in projects])
            outcome = await apply_commit_fields(tx, updated, commits, update=True) if commits else CommitsOutcome()
            view = await _view(tx, await tx.releases.update(release.id, {}))
    except ReleaseGone:
        raise NotFound() from None
    _raise_refs_error(outcome)
    return view


def _raise_refs_error(outcome: CommitsOutcome) -> None:
    if outcome.refs_error is not None:
        raise BadRequest({"refs": [outcome.refs_error]})


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
    last_commit = await tx.commits.by_id(release.last_commit_id) if release.last_commit_id else None
    return ReleaseView(
        release=release,
        projects=await tx.projects.of_release(release.id),
        deploy_count=await tx.deploys.count(release.id),
        last_deploy=latest[0] if latest else None,
        last_commit=last_commit,
        authors=tuple(await tx.commits.authors(release.id)) if release.commit_count else (),
    )


@dataclass(frozen=True, slots=True)
class Neighbours:
    """A release's neighbours in one project: the release created just before (`previous`)
    and just after (`next`) among those the list shows, and the project's first and last."""

    previous: str | None
    next: str | None
    first: str | None
    last: str | None


async def project_neighbours(
    backend: Backend, release: Release, project: Project, *, status: str, query: str | None, environments: list[str]
) -> Neighbours:
    """OrganizationReleaseDetailsPaginationMixin for sort=date: neighbours by creation among
    the project's releases of this status whose version contains the query."""
    terms = sentry.neighbour_query(query)
    async with backend.catalog.read() as tx:
        previous, following = await tx.releases.neighbours(
            release, project.id, status=status, query=terms, environments=environments
        )
        first, last = await tx.releases.first_and_last(release.organization_id, project.id)
    return Neighbours(previous=previous, next=following, first=first, last=last)
