"""The catalog contract for releases' commits, searches, semver order and neighbours: the
same checks on every engine (these statements differ most between SQLite and PostgreSQL:
row-value comparisons, NULL ordering, upserts with RETURNING)."""

from __future__ import annotations

from relserver.models import Release, ReleaseCondition
from relserver.sentry import release_conditions, semver_columns
from relserver.storage.catalog import Catalog

from .test_catalog_contract import catalog, seed

__all__ = ["catalog"]


async def add_release(catalog: Catalog, version: str) -> Release:
    async with catalog.write() as tx:
        org = await tx.organizations.ensure("acme")
        (project,) = await tx.projects.ensure(org.id, ["web"])
        release, _ = await tx.releases.get_or_create(
            org.id, version, ref=None, url=None, user_agent=None, date_released=None, semver=semver_columns(version)
        )
        await tx.releases.link(release.id, [project.id])
    return release


class TestReleaseSearch:
    async def test_conditions_and_semver_order_agree_on_every_engine(self, catalog: Catalog) -> None:
        for version in ["web@1.0.0", "web@2.0.0-rc.1", "web@2.0.0+15", "web@1.10.0+9", "plain", "a_b%"]:
            release = await add_release(catalog, version)

        async def found(query: str | None = None, sort: str = "date") -> list[str]:
            conditions: list[ReleaseCondition] = release_conditions(query) if query else []
            async with catalog.read() as tx:
                page = await tx.releases.page(
                    release.organization_id,
                    project_id=None,
                    in_projects=(),
                    query=None,
                    status="open",
                    offset=0,
                    limit=20,
                    conditions=conditions,
                    sort=sort,
                )
            return [r.version for r in page]

        assert await found(sort="semver") == [
            "web@2.0.0+15",
            "web@2.0.0-rc.1",
            "web@1.10.0+9",
            "web@1.0.0",
            "a_b%",
            "plain",
        ]
        assert await found(sort="build") == ["web@2.0.0+15", "web@1.10.0+9"]
        assert await found("release.version:>=2.0.0-rc.1") == ["web@2.0.0+15", "web@2.0.0-rc.1"]
        assert await found("!release.version:2.*") == ["a_b%", "plain", "web@1.10.0+9", "web@1.0.0"]
        assert await found("release:web@1*") == ["web@1.10.0+9", "web@1.0.0"]
        assert await found("release:*0+9") == ["web@1.10.0+9"]
        assert await found("release:[plain, web@1.0.0]") == ["plain", "web@1.0.0"]
        assert await found("release.build:>9") == ["web@2.0.0+15"]
        assert await found("release.build:1*") == ["web@2.0.0+15"]
        assert await found("WEB@2") == ["web@2.0.0+15", "web@2.0.0-rc.1"]
        # LIKE's wildcards are literal in a free-text search.
        assert await found("_b%") == ["a_b%"]


class TestCommits:
    async def test_commits_repositories_authors_and_head_commits_upsert_on_every_engine(self, catalog: Catalog) -> None:
        org, _, release = await seed(catalog)
        async with catalog.write() as tx:
            repo = await tx.commits.repository(org.id, "acme/app")
            assert await tx.commits.repository(org.id, "acme/app") == repo
            author = await tx.commits.author(org.id, "ada@example.com", "Ada")
            assert await tx.commits.author(org.id, "ada@example.com", "Ada L.") == author
            first = await tx.commits.commit(org.id, repo.id, "a" * 40, message="one", author_id=author)
            # Values not given keep the stored ones.
            assert await tx.commits.commit(org.id, repo.id, "a" * 40) == first
            second = await tx.commits.commit(org.id, repo.id, "b" * 40, message="two")
            await tx.commits.add_file_changes(org.id, first, [("a.js", "M"), ("b.js", "A")])
            await tx.commits.add_file_changes(org.id, first, [("a.js", "D")])
            await tx.commits.replace_release_commits(release.id, [second, first])
            await tx.commits.set_head_commit(release.id, repo.id, second, replace=False)
            await tx.commits.set_head_commit(release.id, repo.id, first, replace=False)
        async with catalog.read() as tx:
            listed = await tx.commits.of_release(release.id)
            assert [(c.key, c.message) for c in listed] == [("b" * 40, "two"), ("a" * 40, "one")]
            assert [(a.name, a.email) for a in await tx.commits.authors(release.id)] == [("Ada L.", "ada@example.com")]
            files = await tx.commits.file_changes(release.id)
            assert [(f.filename, f.type, f.repository_name) for f in files] == [
                ("a.js", "M", "acme/app"),
                ("b.js", "A", "acme/app"),
            ]
            assert await tx.commits.head_commits(release.id) == {"acme/app": "b" * 40}
            stored = await tx.releases.by_id(release.id)
            assert stored is not None and (stored.commit_count, stored.last_commit_id) == (2, second)
            assert [
                r.name for r in await tx.commits.repositories(org.id, status="active", query="APP", offset=0, limit=5)
            ] == ["acme/app"]
        async with catalog.write() as tx:
            await tx.commits.set_head_commit(release.id, repo.id, first, replace=True)
            assert await tx.commits.head_commits(release.id) == {"acme/app": "a" * 40}
            await tx.commits.clear_release_commits(release.id)
            assert await tx.commits.of_release(release.id) == []
            assert await tx.commits.head_commits(release.id) == {}


class TestNeighbours:
    async def test_neighbours_first_last_and_previous_with_commits_on_every_engine(self, catalog: Catalog) -> None:
        one, two, three = [await add_release(catalog, v) for v in ("1.0", "2.0", "x3.0")]
        async with catalog.write() as tx:
            (project,) = await tx.projects.ensure(one.organization_id, ["web"])
            repo = await tx.commits.repository(one.organization_id, "acme/app")
            commit = await tx.commits.commit(one.organization_id, repo.id, "a" * 40)
            await tx.commits.replace_release_commits(one.id, [commit])
        async with catalog.read() as tx:
            assert await tx.releases.neighbours(two, project.id, status="open", query=[]) == ("1.0", "x3.0")
            assert await tx.releases.neighbours(two, project.id, status="open", query=["X"]) == (None, "x3.0")
            assert await tx.releases.neighbours(two, project.id, status="archived", query=[]) == (None, None)
            assert await tx.releases.first_and_last(one.organization_id, project.id) == ("1.0", "x3.0")
            previous = await tx.releases.previous_with_commits(three, [project.id])
            assert previous is not None and previous.version == "1.0"
            assert await tx.releases.previous_with_commits(three, []) is None
