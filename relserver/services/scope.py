"""Resolving the organization, project and release a request names, and provisioning on
first use (DESIGN D3): only requests that create something and succeed create."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from .. import sentry
from ..auth import check_organization
from ..errors import BadRequest, NotFound, PermissionDenied
from ..models import Organization, Project, Release, ReleaseScope, Token
from .context import Backend

log = logging.getLogger(__name__)


# Sentry's message when a `projects` entry is unknown or not accessible (organization_releases.py).
INVALID_PROJECTS = "Invalid project ids or slugs"


async def find_organization(
    backend: Backend, token: Token, ref: str, *, creatable: bool = False
) -> Organization | None:
    """The organization named in the path: 403 for a token bound elsewhere, 404 if unknown.

    None when it does not exist yet but the request may create it on first use (DESIGN D3):
    only requests that create something pass `creatable`, and they create it (`provision`)
    once everything else about them has been checked, so a GET or a failed request never
    leaves an organization behind.
    """
    async with backend.catalog.read() as tx:
        org = await tx.organizations.get(ref)
    if org is not None:
        check_organization(token, org.slug)
        return org
    check_organization(token, ref)
    if creatable and backend.config.auto_create and sentry.is_valid_org_slug(ref):
        return None
    raise NotFound()


async def resolve_organization(backend: Backend, token: Token, ref: str) -> Organization:
    """An organization that must exist already (every request that creates nothing)."""
    org = await find_organization(backend, token, ref)
    assert org is not None
    return org


async def find_project(
    backend: Backend, org: Organization | None, ref: str, *, creatable: bool = False
) -> Project | None:
    """The project named in the path, 404 if unknown; None when a creating request may create it."""
    async with backend.catalog.read() as tx:
        project = await tx.projects.get(org.id, ref) if org is not None else None
    if project is not None:
        return project
    if creatable and backend.config.auto_create and sentry.is_valid_project_slug(ref):
        return None
    raise NotFound()


async def provision(
    backend: Backend, org: Organization | None, org_ref: str, project_refs: Sequence[str] = ()
) -> tuple[Organization, list[Project]]:
    """Create on first use what a request that has passed every check names (DESIGN D3).

    The organization is created only when every project named is one it could hold, so an
    invalid `projects` entry leaves nothing behind.
    """
    if org is None:
        if not all(sentry.is_valid_project_slug(ref) for ref in project_refs):
            raise BadRequest({"projects": [INVALID_PROJECTS]})
        async with backend.catalog.write() as tx:
            org = await tx.organizations.ensure(org_ref)
        log.info("created organization %r on first use", org.slug)
    projects = await resolve_release_projects(backend, org, list(project_refs)) if project_refs else []
    return org, projects


@dataclass(frozen=True, slots=True)
class PrefetchedScope:
    """A release's path objects read with the request's token (`tokens.token_and_release_scope`);
    `found` is None when any of them does not exist."""

    found: ReleaseScope | None


async def find_release_scope(
    backend: Backend,
    token: Token,
    org_ref: str,
    project_ref: str | None,
    version: str,
    prefetched: PrefetchedScope | None = None,
) -> tuple[Organization, Release] | None:
    """The common case in one query: everything exists. None sends callers the long way."""
    if prefetched is not None:
        found = prefetched.found
    else:
        async with backend.catalog.read() as tx:
            found = await tx.releases.scope(org_ref, project_ref, version)
    if found is None:
        return None
    check_organization(token, found.organization.slug)
    if found.project is not None and not found.linked:
        raise NotFound()
    return found.organization, found.release


async def resolve_project(backend: Backend, org: Organization, ref: str) -> Project:
    project = await find_project(backend, org, ref)
    assert project is not None
    return project


async def resolve_release_projects(backend: Backend, org: Organization, refs: list[str]) -> list[Project]:
    """The `projects` of a release-create body; unknown ones are created only when allowed."""
    found: dict[str, Project] = {}
    missing = []
    async with backend.catalog.read() as tx:
        for ref in dict.fromkeys(refs):
            project = await tx.projects.get(org.id, ref)
            if project is not None:
                found[ref] = project
            elif backend.config.auto_create and sentry.is_valid_project_slug(ref):
                missing.append(ref)
            else:
                raise BadRequest({"projects": [INVALID_PROJECTS]})
    if missing:
        async with backend.catalog.write() as wtx:
            created = await wtx.projects.ensure(org.id, missing)
        for project in created:
            found[project.slug] = project
            log.info("created project %r in %r on first use", project.slug, org.slug)
    return [found[ref] for ref in dict.fromkeys(refs)]


async def get_release(backend: Backend, org: Organization, version: str, project: Project | None = None) -> Release:
    """A release by version; at project scope it must also be linked to that project."""
    async with backend.catalog.read() as tx:
        release = await tx.releases.get(org.id, version)
        if release is None:
            raise NotFound()
        if project is not None and not await tx.releases.is_linked(release.id, project.id):
            raise NotFound()
    return release


async def requested_projects(backend: Backend, org: Organization, project_ids: set[int]) -> list[int]:
    """The `project` ids of an organization list, checked as OrganizationEndpoint.get_projects does:
    every requested id must be a project of the organization (else 403); -1 alone means all."""
    if not project_ids or project_ids == sentry.ALL_ACCESS_PROJECTS:
        return []
    async with backend.catalog.read() as tx:
        known = {p.id for p in await tx.projects.of_organization(org.id)}
    if not project_ids <= known:
        raise PermissionDenied()
    return sorted(project_ids)


async def meta_project(backend: Backend, org: Organization, raw: str | None) -> Project | None:
    """A release details' `project`: a positive id of one of the organization's projects, or
    None (-1 means all projects; anything else is ignored, organization_release_details.py)."""
    if raw is None or not raw.strip().lstrip("-").isdecimal():
        return None
    project_id = int(raw)
    if project_id <= 0 or project_id > sentry.MAX_DATABASE_ID:
        return None
    async with backend.catalog.read() as tx:
        project = await tx.projects.get(org.id, str(project_id))
    return project
