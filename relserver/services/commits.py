"""A release's commits: set them (Sentry's set_commits), set head commits (set_refs), list
them, their files, the organization's repositories and the previous release with commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .. import sentry
from ..models import CommitFile, Organization, Release, ReleaseCommit, Repository
from ..sentry.commits import CommitData, CommitFields, RefData, author_email, invalid_repositories, should_ignore_commit
from ..storage.catalog import WriteTx
from .context import Backend


@dataclass(frozen=True, slots=True)
class CommitsOutcome:
    """What applying a body's commit fields did: `refs_error` is Sentry's 400 text for refs
    naming unknown repositories (the commits, if any, are kept: Sentry stores them first)."""

    refs_error: str | None = None


async def _set_commits(tx: WriteTx, release: Release, commits: Sequence[CommitData]) -> None:
    """releases/set_commits.py: newest first by timestamp, `#skipsentry` ones dropped;
    repositories and authors created as needed; the release's list replaced."""
    ordered = sorted(commits, key=lambda c: c.timestamp.timestamp() if c.timestamp else 0, reverse=True)
    kept = [c for c in ordered if not should_ignore_commit(c)]
    org_id = release.organization_id
    repositories: dict[str, Repository] = {}
    authors: dict[str, int] = {}
    commit_ids: list[int] = []
    heads: dict[int, int] = {}
    for data in kept:
        name = data.repository or f"organization-{org_id}"
        if name not in repositories:
            repositories[name] = await tx.commits.repository(org_id, name)
        repo = repositories[name]
        author_id = None
        email = author_email(data)
        if email is not None:
            if email not in authors:
                authors[email] = await tx.commits.author(org_id, email, data.author_name)
            author_id = authors[email]
        commit_id = await tx.commits.commit(
            org_id, repo.id, data.id, message=data.message, author_id=author_id, date_created=data.timestamp
        )
        if data.patch_set:
            await tx.commits.add_file_changes(org_id, commit_id, data.patch_set)
        commit_ids.append(commit_id)
        heads.setdefault(repo.id, commit_id)
    await tx.commits.replace_release_commits(release.id, commit_ids)
    # fill_in_missing_release_head_commits: the newest commit per repository, if none is set.
    for repo_id, commit_id in heads.items():
        await tx.commits.set_head_commit(release.id, repo_id, commit_id, replace=False)


async def _set_refs(tx: WriteTx, release: Release, refs: Sequence[RefData]) -> str | None:
    """Release.set_refs: every repository must exist; each ref becomes the release's head
    commit there. Fetching the range needs a provider integration, which relserver has not."""
    names = {r.repository for r in refs}
    repos = await tx.commits.repositories_named(release.organization_id, names)
    if missing := names - set(repos):
        return invalid_repositories(missing)
    for ref in refs:
        repo = repos[ref.repository]
        commit_id = await tx.commits.commit(release.organization_id, repo.id, ref.commit)
        await tx.commits.set_head_commit(release.id, repo.id, commit_id, replace=True)
    return None


async def apply_commit_fields(tx: WriteTx, release: Release, fields: CommitFields, *, update: bool) -> CommitsOutcome:
    """A create's or update's `commits`, then `refs` (or the deprecated `headCommits`); on
    update an explicitly empty `refs` without head commits clears the release's commits
    (organization_release_details.py)."""
    if fields.commits:
        await _set_commits(tx, release, fields.commits)
    refs = fields.refs or fields.head_commits
    if refs:
        return CommitsOutcome(refs_error=await _set_refs(tx, release, refs))
    if update and fields.refs == [] and not fields.head_commits:
        await tx.commits.clear_release_commits(release.id)
    return CommitsOutcome()


async def list_release_commits(
    backend: Backend, release: Release, page: sentry.Page, *, repository: str | None = None
) -> tuple[list[ReleaseCommit], bool]:
    async with backend.catalog.read() as tx:
        found = await tx.commits.of_release(release.id, repository=repository, offset=page.offset, limit=page.limit + 1)
    return found[: page.limit], len(found) > page.limit


async def list_commit_files(
    backend: Backend,
    release: Release,
    page: sentry.Page,
    *,
    repository_id: int | None = None,
    repository: str | None = None,
) -> tuple[list[CommitFile], bool]:
    async with backend.catalog.read() as tx:
        found = await tx.commits.file_changes(
            release.id, repository_id=repository_id, repository=repository, offset=page.offset, limit=page.limit + 1
        )
    return found[: page.limit], len(found) > page.limit


async def list_repositories(
    backend: Backend, org: Organization, page: sentry.Page, *, status: str, query: str | None
) -> tuple[list[Repository], bool]:
    """OrganizationRepositoriesEndpoint: `status` active (the default), deleted (the
    inactive ones), any other value nothing; `query` a name substring."""
    if status not in ("active", "deleted"):
        return [], False
    async with backend.catalog.read() as tx:
        found = await tx.commits.repositories(
            org.id, status=status, query=query, offset=page.offset, limit=page.limit + 1
        )
    return found[: page.limit], len(found) > page.limit


async def previous_with_commits(backend: Backend, release: Release, project_ids: Sequence[int]) -> Release | None:
    """The release a second `set-commits` starts from: of the release's projects (narrowed
    to `project_ids` when given), the latest with commits not released after it."""
    async with backend.catalog.read() as tx:
        linked = [p.id for p in await tx.projects.of_release(release.id)]
        wanted = [p for p in linked if p in project_ids] if project_ids else linked
        return await tx.releases.previous_with_commits(release, wanted)
