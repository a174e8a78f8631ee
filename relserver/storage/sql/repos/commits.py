"""Repositories, commits, their authors and file changes, and what links them to releases."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ....models import CommitAuthor, CommitFile, ReleaseCommit, Repository
from ..dialect import Db, Row, columns, dt_required, ts, utcnow

REPOSITORY_COLUMNS = ("id", "organization_id", "name", "url", "provider", "status", "date_created")
_REPOSITORY = f"SELECT {columns('g', REPOSITORY_COLUMNS)} FROM repositories g"
# A release's commit with its repository (g_) and author (a_), in one row.
_RELEASE_COMMIT = (
    "SELECT c.id, c.key, c.message, c.date_created,"
    f" {columns('g', REPOSITORY_COLUMNS, 'g_')}, a.id AS a_id, a.name AS a_name, a.email AS a_email"
    " FROM commits c JOIN repositories g ON g.id = c.repository_id"
    " LEFT JOIN commit_authors a ON a.id = c.author_id"
)


def repository_from(row: Row, prefix: str = "") -> Repository:
    return Repository(
        id=row[prefix + "id"],
        organization_id=row[prefix + "organization_id"],
        name=row[prefix + "name"],
        url=row[prefix + "url"],
        provider=row[prefix + "provider"],
        status=row[prefix + "status"],
        date_created=dt_required(row[prefix + "date_created"]),
    )


def _author_from(row: Row) -> CommitAuthor | None:
    return CommitAuthor(id=row["a_id"], name=row["a_name"], email=row["a_email"]) if row["a_id"] is not None else None


def _commit_from(row: Row) -> ReleaseCommit:
    return ReleaseCommit(
        id=row["id"],
        key=row["key"],
        message=row["message"],
        date_created=dt_required(row["date_created"]),
        repository=repository_from(row, "g_"),
        author=_author_from(row),
    )


class Commits:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    # --- repositories ---------------------------------------------------------------------

    async def repository(self, organization_id: int, name: str) -> Repository:
        """The organization's repository of this name, created when it is new."""
        await self.db.run(
            "INSERT INTO repositories (organization_id, name, date_created) VALUES (:org, :name, :now)"
            " ON CONFLICT DO NOTHING",
            {"org": organization_id, "name": name, "now": ts(utcnow())},
        )
        found = await self.repositories_named(organization_id, [name])
        return found[name]

    async def repositories_named(self, organization_id: int, names: Iterable[str]) -> dict[str, Repository]:
        """The active repositories among these names, by name."""
        found: dict[str, Repository] = {}
        for batch in self.db.dialect.batches(names):
            test, params = self.db.dialect.in_list("g.name", "name", batch)
            rows = await self.db.rows(
                f"{_REPOSITORY} WHERE g.organization_id = :org AND g.status = 'active' AND {test}",
                {"org": organization_id, **params},
            )
            found.update((r["name"], repository_from(r)) for r in rows)
        return found

    async def repositories(
        self, organization_id: int, *, status: str | None, query: str | None, offset: int, limit: int
    ) -> list[Repository]:
        """By name; `status` "active" or anything else but the active ones (None)."""
        where = ["g.organization_id = :org"]
        params: dict[str, Any] = {"org": organization_id, "offset": offset, "limit": limit}
        where.append("g.status = 'active'" if status == "active" else "g.status <> 'active'")
        if query:
            where.append(f"g.name {self.db.dialect.like} :query ESCAPE '\\'")
            params["query"] = like_pattern(query)
        rows = await self.db.rows(
            f"{_REPOSITORY} WHERE {' AND '.join(where)} ORDER BY g.name, g.id LIMIT :limit OFFSET :offset", params
        )
        return [repository_from(r) for r in rows]

    # --- commits --------------------------------------------------------------------------

    async def author(self, organization_id: int, email: str, name: str | None) -> int:
        """The author with this email (its name updated to this one); its id."""
        row = await self.db.row(
            "INSERT INTO commit_authors (organization_id, email, name) VALUES (:org, :email, :name)"
            " ON CONFLICT (organization_id, email) DO UPDATE SET name = excluded.name RETURNING id",
            {"org": organization_id, "email": email, "name": name},
        )
        assert row is not None
        return int(row["id"])

    async def commit(
        self,
        organization_id: int,
        repository_id: int,
        key: str,
        *,
        message: str | None = None,
        author_id: int | None = None,
        date_created: datetime | None = None,
    ) -> int:
        """Get or create by (repository, key); values given replace stored ones; its id."""
        row = await self.db.row(
            "INSERT INTO commits (organization_id, repository_id, key, message, author_id, date_created)"
            " VALUES (:org, :repo, :key, :message, :author, :date)"
            " ON CONFLICT (repository_id, key) DO UPDATE SET"
            " message = COALESCE(excluded.message, commits.message),"
            " author_id = COALESCE(excluded.author_id, commits.author_id),"
            " date_created = CASE WHEN :dated = 1 THEN excluded.date_created ELSE commits.date_created END"
            " RETURNING id",
            {
                "org": organization_id,
                "repo": repository_id,
                "key": key,
                "message": message,
                "author": author_id,
                "date": ts(date_created or utcnow()),
                "dated": 1 if date_created else 0,
            },
        )
        assert row is not None
        return int(row["id"])

    async def add_file_changes(self, organization_id: int, commit_id: int, changes: Sequence[tuple[str, str]]) -> None:
        """bulk_create(ignore_conflicts=True): a file already recorded for the commit stays."""
        await self.db.run_many(
            "INSERT INTO commit_file_changes (organization_id, commit_id, filename, type)"
            " VALUES (:org, :commit, :filename, :type) ON CONFLICT DO NOTHING",
            [{"org": organization_id, "commit": commit_id, "filename": f, "type": t} for f, t in changes],
        )

    # --- a release's commits --------------------------------------------------------------

    async def replace_release_commits(self, release_id: int, commit_ids: Sequence[int]) -> None:
        """The release's commit list becomes these, in this order (the first is the newest);
        its cached count and last commit follow."""
        await self.db.run("DELETE FROM release_commits WHERE release_id = :release", {"release": release_id})
        await self.db.run_many(
            "INSERT INTO release_commits (release_id, commit_id, ord) VALUES (:release, :commit, :ord)"
            " ON CONFLICT DO NOTHING",
            [{"release": release_id, "commit": c, "ord": i} for i, c in enumerate(commit_ids)],
        )
        await self.db.run(
            "UPDATE releases SET commit_count = :count, last_commit_id = :last WHERE id = :release",
            {"release": release_id, "count": len(commit_ids), "last": commit_ids[0] if commit_ids else None},
        )

    async def clear_release_commits(self, release_id: int) -> None:
        """Release.clear_commits: no commits, no head commits, count 0."""
        await self.db.run("DELETE FROM release_commits WHERE release_id = :release", {"release": release_id})
        await self.db.run("DELETE FROM release_head_commits WHERE release_id = :release", {"release": release_id})
        await self.db.run(
            "UPDATE releases SET commit_count = 0, last_commit_id = NULL WHERE id = :release", {"release": release_id}
        )

    async def set_head_commit(self, release_id: int, repository_id: int, commit_id: int, *, replace: bool) -> None:
        """The release's head commit in a repository: replaced (set_refs) or only filled in
        when missing (set_commits)."""
        conflict = "DO UPDATE SET commit_id = excluded.commit_id" if replace else "DO NOTHING"
        await self.db.run(
            "INSERT INTO release_head_commits (release_id, repository_id, commit_id)"
            f" VALUES (:release, :repo, :commit) ON CONFLICT (release_id, repository_id) {conflict}",
            {"release": release_id, "repo": repository_id, "commit": commit_id},
        )

    async def head_commits(self, release_id: int) -> dict[str, str]:
        """Repository name → head commit key."""
        rows = await self.db.rows(
            "SELECT g.name, c.key FROM release_head_commits h JOIN repositories g ON g.id = h.repository_id"
            " JOIN commits c ON c.id = h.commit_id WHERE h.release_id = :release ORDER BY g.name",
            {"release": release_id},
        )
        return {r["name"]: r["key"] for r in rows}

    async def of_release(
        self, release_id: int, *, repository: str | None = None, offset: int = 0, limit: int = 100
    ) -> list[ReleaseCommit]:
        """The release's commits in its order (newest first)."""
        params: dict[str, Any] = {"release": release_id, "offset": offset, "limit": limit}
        where = ""
        if repository is not None:
            where, params["repo_name"] = " AND g.name = :repo_name", repository
        rows = await self.db.rows(
            f"{_RELEASE_COMMIT} JOIN release_commits rc ON rc.commit_id = c.id"
            f" WHERE rc.release_id = :release{where} ORDER BY rc.ord, c.id LIMIT :limit OFFSET :offset",
            params,
        )
        return [_commit_from(r) for r in rows]

    async def by_id(self, commit_id: int) -> ReleaseCommit | None:
        row = await self.db.row(f"{_RELEASE_COMMIT} WHERE c.id = :id", {"id": commit_id})
        return _commit_from(row) if row else None

    async def authors(self, release_id: int) -> list[CommitAuthor]:
        """The distinct authors of the release's commits, in the order they first appear."""
        rows = await self.db.rows(
            "SELECT a.id, a.name, a.email, MIN(rc.ord) AS first FROM release_commits rc"
            " JOIN commits c ON c.id = rc.commit_id JOIN commit_authors a ON a.id = c.author_id"
            " WHERE rc.release_id = :release GROUP BY a.id, a.name, a.email ORDER BY first, a.id",
            {"release": release_id},
        )
        return [CommitAuthor(id=r["id"], name=r["name"], email=r["email"]) for r in rows]

    async def file_changes(
        self,
        release_id: int,
        *,
        repository_id: int | None = None,
        repository: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[CommitFile]:
        """Files the release's commits changed, by file name."""
        params: dict[str, Any] = {"release": release_id, "offset": offset, "limit": limit}
        where = ""
        if repository_id is not None:
            where, params["repo_id"] = " AND g.id = :repo_id", repository_id
        elif repository is not None:
            where, params["repo_name"] = " AND g.name = :repo_name", repository
        rows = await self.db.rows(
            "SELECT f.id, f.organization_id, f.filename, f.type, c.message, g.name AS repo_name,"
            " a.id AS a_id, a.name AS a_name, a.email AS a_email"
            " FROM commit_file_changes f JOIN commits c ON c.id = f.commit_id"
            " JOIN repositories g ON g.id = c.repository_id LEFT JOIN commit_authors a ON a.id = c.author_id"
            " WHERE f.commit_id IN (SELECT commit_id FROM release_commits WHERE release_id = :release)"
            f"{where} ORDER BY f.filename, f.id LIMIT :limit OFFSET :offset",
            params,
        )
        return [
            CommitFile(
                id=r["id"],
                organization_id=r["organization_id"],
                filename=r["filename"],
                type=r["type"],
                commit_message=r["message"],
                repository_name=r["repo_name"],
                author=_author_from(r),
            )
            for r in rows
        ]


def like_pattern(text: str) -> str:
    """A LIKE pattern for `text` anywhere, its wildcards taken literally (ESCAPE '\\')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
