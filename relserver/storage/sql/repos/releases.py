"""Releases, the projects they are linked to, and their deploys."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ....models import Deploy, Release, ReleaseCondition, ReleaseScope, SemverColumns, Token
from ..dialect import Db, Dialect, Row, columns, dt, dt_required, ts, utcnow
from .commits import like_pattern
from .orgs import ORGANIZATION_COLUMNS, PROJECT_COLUMNS, organization_from, project_from, ref_lookup
from .release_conditions import PRERELEASE_CASE, condition_sql
from .tokens import TOKEN_COLUMNS, Tokens, token_from

RELEASE_COLUMNS = (
    "id",
    "organization_id",
    "version",
    "status",
    "ref",
    "url",
    "user_agent",
    "date_created",
    "date_released",
    "commit_count",
    "last_commit_id",
)
_RELEASE = f"SELECT {columns('r', RELEASE_COLUMNS)} FROM releases r"


def _scope_query(
    dialect: Dialect, org_ref: str, project_ref: str | None, version: str
) -> tuple[str, dict[str, Any]] | None:
    """The select of `Releases.scope`; None when a ref cannot name anything (PostgreSQL's
    text cannot hold NUL, so a ref holding one names nothing there)."""
    if not dialect.text_holds_nul and any("\x00" in ref for ref in (org_ref, project_ref or "", version)):
        return None
    org_lookup = ref_lookup(org_ref)
    project_lookup = ref_lookup(project_ref) if project_ref is not None else ("id", None)
    if org_lookup is None or project_lookup is None:
        return None
    (org_column, org_value), (project_column, project_value) = org_lookup, project_lookup
    sql = (
        f"SELECT {columns('o', ORGANIZATION_COLUMNS, 'o_')}, {columns('p', PROJECT_COLUMNS, 'p_')},"
        f" {columns('r', RELEASE_COLUMNS, 'r_')},"
        " EXISTS (SELECT 1 FROM release_projects rp WHERE rp.release_id = r.id AND rp.project_id = p.id)"
        " AS linked"
        " FROM organizations o JOIN releases r ON r.organization_id = o.id AND r.version = :version"
        f" LEFT JOIN projects p ON p.organization_id = o.id AND p.{project_column} = :project"
        f" WHERE o.{org_column} = :org"
    )
    return sql, {"version": version, "project": project_value, "org": org_value}


def _scope_from(row: Row | None, project_ref: str | None) -> ReleaseScope | None:
    if row is None:
        return None
    project = project_from(row, "p_") if row["p_id"] is not None else None
    if project_ref is not None and project is None:
        return None
    return ReleaseScope(organization_from(row, "o_"), project, release_from(row, "r_"), bool(row["linked"]))


class ReleaseGone(Exception):
    """The release was deleted between the caller's lookup and this transaction."""


def release_from(row: Row, prefix: str = "") -> Release:
    return Release(
        id=row[prefix + "id"],
        organization_id=row[prefix + "organization_id"],
        version=row[prefix + "version"],
        status=row[prefix + "status"],
        ref=row[prefix + "ref"],
        url=row[prefix + "url"],
        user_agent=row[prefix + "user_agent"],
        date_created=dt_required(row[prefix + "date_created"]),
        date_released=dt(row[prefix + "date_released"]),
        commit_count=row[prefix + "commit_count"],
        last_commit_id=row[prefix + "last_commit_id"],
    )


class Releases:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    async def get(self, organization_id: int, version: str) -> Release | None:
        row = await self.db.row(
            f"{_RELEASE} WHERE r.organization_id = :org AND r.version = :version",
            {"org": organization_id, "version": version},
        )
        return release_from(row) if row else None

    async def by_id(self, release_id: int) -> Release | None:
        row = await self.db.row(f"{_RELEASE} WHERE r.id = :id", {"id": release_id})
        return release_from(row) if row else None

    async def scope(self, org_ref: str, project_ref: str | None, version: str) -> ReleaseScope | None:
        """Organization, project, release and whether they are linked, in one query; None
        when any of them does not exist."""
        query = _scope_query(self.db.dialect, org_ref, project_ref, version)
        if query is None:
            return None
        sql, params = query
        return _scope_from(await self.db.row(sql, params), project_ref)

    async def scope_with_token(
        self, token_hash: str, org_ref: str, project_ref: str | None, version: str
    ) -> tuple[Token | None, ReleaseScope | None]:
        """The token a hash names and `scope(…)`, in one round trip: requests on a release's
        paths (an upload above all) need both, and on PostgreSQL a round trip costs this
        process about 0.3 ms of CPU under load, a sixth of a small upload's."""
        query = _scope_query(self.db.dialect, org_ref, project_ref, version)
        if query is None:
            return await Tokens(self.db).get(token_hash), None
        sql, params = query
        row = await self.db.row(
            f"SELECT {columns('t', TOKEN_COLUMNS, 't_')}, s.* FROM tokens t LEFT JOIN ({sql}) s ON TRUE"
            " WHERE t.token_hash = :hash",
            {**params, "hash": token_hash},
        )
        if row is None:
            return None, None
        return token_from(row, "t_"), _scope_from(row if row["o_id"] is not None else None, project_ref)

    async def is_linked(self, release_id: int, project_id: int) -> bool:
        row = await self.db.row(
            "SELECT 1 AS linked FROM release_projects WHERE release_id = :release AND project_id = :project",
            {"release": release_id, "project": project_id},
        )
        return row is not None

    async def link(self, release_id: int, project_ids: Iterable[int]) -> bool:
        """Link projects; True when any link is new."""
        changed = False
        for project_id in project_ids:
            changed = (
                await self.db.run(
                    "INSERT INTO release_projects (release_id, project_id) VALUES (:release, :project)"
                    " ON CONFLICT DO NOTHING",
                    {"release": release_id, "project": project_id},
                )
                > 0
            ) or changed
        return changed

    async def get_or_create(
        self,
        organization_id: int,
        version: str,
        *,
        ref: str | None,
        url: str | None,
        user_agent: str | None,
        date_released: datetime | None,
        status: str = "open",
        semver: SemverColumns | None = None,
    ) -> tuple[Release, bool]:
        """The release, and True when it was created (an existing one keeps its values);
        `semver` is what its version parses into (None: parsed later, at start-up).

        The row is kept from deletion until the transaction ends, so the links and updates
        that follow find it; a create racing a delete on another process either finds the
        row before the delete or makes it anew after it."""
        params = {
            "org": organization_id,
            "version": version,
            "ref": ref,
            "url": url,
            "user_agent": user_agent,
            "now": ts(utcnow()),
            "date_released": ts(date_released),
        }
        # ON CONFLICT DO UPDATE, where DO NOTHING would not, locks the row it meets (PostgreSQL
        # takes the lock of an update of `ref`, a non-key column, so references to the release
        # still go on beside it); WHERE 1 = 0 leaves the row as it is. A row being deleted by
        # another transaction makes PostgreSQL retry the insert, so the row read next is there
        # until this transaction ends. SQLite's single writer needs no lock.
        created = await self.db.run(
            "INSERT INTO releases (organization_id, version, ref, url, user_agent, date_created, date_released)"
            " VALUES (:org, :version, :ref, :url, :user_agent, :now, :date_released)"
            " ON CONFLICT (organization_id, version) DO UPDATE SET ref = releases.ref WHERE 1 = 0",
            params,
        )
        row = await self.db.row(
            f"{_RELEASE} WHERE r.organization_id = :org AND r.version = :version",
            {"org": organization_id, "version": version},
        )
        if row is None:  # cannot happen while the row is locked; a 404 rather than a 500 if it does
            raise ReleaseGone(version)
        release = release_from(row)
        if created:
            if status != "open":
                release = await self.update(release.id, {"status": status})
            if semver is not None:
                await self.set_semver(release.id, semver)
        return release, created > 0

    async def page(
        self,
        organization_id: int,
        *,
        project_id: int | None,
        in_projects: Sequence[int],
        query: str | None,
        status: str | None,
        offset: int,
        limit: int,
        conditions: Sequence[ReleaseCondition] = (),
        sort: str = "date",
        environments: Sequence[str] = (),
        start: datetime | None = None,
        end: datetime | None = None,
        linked_only: bool = False,
    ) -> list[Release]:
        """One page of releases. Order: `sort` "date" (newest created first; at project scope
        `project_id` newest released first), "semver" (highest version first, non-semver
        last) or "build" (highest build number first, only releases that have one).
        `in_projects` keeps releases of those projects, `query` a literal version substring,
        `conditions` a release search, `environments` releases deployed to one of them,
        `start`/`end` releases created in that range, `linked_only` releases of some project."""
        where = ["r.organization_id = :org"]
        params: dict[str, Any] = {"org": organization_id, "limit": limit, "offset": offset}
        order = "r.date_created DESC, r.id DESC"
        if project_id is not None:
            where.append("r.id IN (SELECT release_id FROM release_projects WHERE project_id = :project)")
            params["project"] = project_id
            order = "COALESCE(r.date_released, r.date_created) DESC, r.id DESC"
        if in_projects:
            test, values = self.db.dialect.in_list("project_id", "in_project", in_projects)
            where.append(f"r.id IN (SELECT release_id FROM release_projects WHERE {test})")
            params.update(values)
        elif linked_only:
            where.append("r.id IN (SELECT release_id FROM release_projects)")
        if query:
            where.append(f"r.version {self.db.dialect.like} :query ESCAPE '\\'")
            params["query"] = like_pattern(query)
        if status is not None:
            where.append("r.status = :status")
            params["status"] = status
        if environments:
            test, values = self.db.dialect.in_list("environment", "environment", environments)
            where.append(f"r.id IN (SELECT release_id FROM deploys WHERE {test})")
            params.update(values)
        if start is not None and end is not None:
            where.append("r.date_created >= :start AND r.date_created <= :end")
            params.update(start=ts(start), end=ts(end))
        for i, condition in enumerate(conditions):
            sql, values = condition_sql(self.db.dialect, condition, f"c{i}_")
            where.append(sql)
            params.update(values)
        if sort == "semver":
            # Release.SEMVER_COLS descending, nulls last, then the newest (organization_releases.py).
            order = (
                "r.major IS NULL, r.major DESC, r.minor DESC, r.patch DESC, r.revision DESC,"
                f" {PRERELEASE_CASE} DESC, r.prerelease DESC, r.date_created DESC, r.id DESC"
            )
        elif sort == "build":
            where.append("r.build_number IS NOT NULL")
            order = "r.build_number DESC, r.id DESC"
        rows = await self.db.rows(
            f"{_RELEASE} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT :limit OFFSET :offset", params
        )
        return [release_from(r) for r in rows]

    async def neighbours(
        self,
        release: Release,
        project_id: int,
        *,
        status: str,
        query: Sequence[str],
        environments: Sequence[str] = (),
    ) -> tuple[str | None, str | None]:
        """The versions of the project's releases created just before and just after this
        one (date, then id), among those with this status whose version contains one of
        `query` (none: any)."""
        found: list[str | None] = []
        for test, order in (
            ("(r.date_created < :date OR (r.date_created = :date AND r.id < :id))", "r.date_created DESC, r.id DESC"),
            ("(r.date_created > :date OR (r.date_created = :date AND r.id > :id))", "r.date_created, r.id"),
        ):
            where = [
                "r.organization_id = :org",
                "r.id IN (SELECT release_id FROM release_projects WHERE project_id = :project)",
                "r.status = :status",
                test,
            ]
            params: dict[str, Any] = {
                "org": release.organization_id,
                "project": project_id,
                "status": status,
                "date": ts(release.date_created),
                "id": release.id,
            }
            if query:
                sql, values = condition_sql(self.db.dialect, ReleaseCondition("contains", values=tuple(query)), "q_")
                where.append(sql)
                params.update(values)
            if environments:
                env_test, values = self.db.dialect.in_list("environment", "environment", environments)
                where.append(f"r.id IN (SELECT release_id FROM deploys WHERE {env_test})")
                params.update(values)
            row = await self.db.row(
                f"SELECT r.version FROM releases r WHERE {' AND '.join(where)} ORDER BY {order} LIMIT 1", params
            )
            found.append(row["version"] if row else None)
        return found[0], found[1]

    async def first_and_last(self, organization_id: int, project_id: int) -> tuple[str | None, str | None]:
        """The versions of the project's first and last created releases."""
        found: list[str | None] = []
        for order in ("r.date_created, r.id", "r.date_created DESC, r.id DESC"):
            row = await self.db.row(
                "SELECT r.version FROM releases r WHERE r.organization_id = :org AND r.id IN"
                " (SELECT release_id FROM release_projects WHERE project_id = :project)"
                f" ORDER BY {order} LIMIT 1",
                {"org": organization_id, "project": project_id},
            )
            found.append(row["version"] if row else None)
        return found[0], found[1]

    async def previous_with_commits(self, release: Release, project_ids: Sequence[int]) -> Release | None:
        """The latest release of these projects that has commits, released (or created) no
        later than this one was (organization_release_previous_commits.py); it may be this one."""
        if not project_ids:
            return None
        test, params = self.db.dialect.in_list("project_id", "project", project_ids)
        row = await self.db.row(
            f"{_RELEASE} WHERE r.organization_id = :org AND r.last_commit_id IS NOT NULL"
            f" AND r.id IN (SELECT release_id FROM release_projects WHERE {test})"
            " AND COALESCE(r.date_released, r.date_created) <= :date"
            " ORDER BY COALESCE(r.date_released, r.date_created) DESC, r.id DESC LIMIT 1",
            {**params, "org": release.organization_id, "date": ts(release.date_released or release.date_created)},
        )
        return release_from(row) if row else None

    async def set_semver(self, release_id: int, semver: SemverColumns) -> None:
        await self.db.run(
            "UPDATE releases SET package = :package, major = :major, minor = :minor, patch = :patch,"
            " revision = :revision, prerelease = :prerelease, build_code = :build_code,"
            " build_number = :build_number, semver_parsed = 1 WHERE id = :id",
            {
                "id": release_id,
                "package": semver.package,
                "major": semver.major,
                "minor": semver.minor,
                "patch": semver.patch,
                "revision": semver.revision,
                "prerelease": semver.prerelease,
                "build_code": semver.build_code,
                "build_number": semver.build_number,
            },
        )

    async def unparsed(self, limit: int) -> list[tuple[int, str]]:
        """Releases whose semver columns were never set (rows of older data dirs)."""
        rows = await self.db.rows(
            "SELECT id, version FROM releases WHERE semver_parsed = 0 ORDER BY id LIMIT :limit", {"limit": limit}
        )
        return [(r["id"], r["version"]) for r in rows]

    async def update(self, release_id: int, changes: dict[str, Any]) -> Release:
        """Set these columns (ref, url, date_released, status); raises ReleaseGone."""
        allowed = {"ref", "url", "date_released", "status"}
        assert set(changes) <= allowed, changes
        values = {k: ts(v) if isinstance(v, datetime) else v for k, v in changes.items()}
        if values:
            assignments = ", ".join(f"{column} = :{column}" for column in values)
            await self.db.run(f"UPDATE releases SET {assignments} WHERE id = :id", {**values, "id": release_id})
        release = await self.by_id(release_id)
        if release is None:
            raise ReleaseGone(release_id)
        return release

    async def delete(self, release_id: int) -> None:
        """The release and, by cascade, its links, dists, files and deploys."""
        await self.db.run("DELETE FROM releases WHERE id = :id", {"id": release_id})

    async def existing(self, release_ids: Iterable[int]) -> set[int]:
        """Which of these releases still exist (callers looked them up before this transaction);
        those found stay, with what is under them, until the transaction ends."""
        found: set[int] = set()
        keep = self.db.dialect.keep_referenced
        for batch in self.db.dialect.batches(sorted(set(release_ids))):
            test, params = self.db.dialect.in_list("id", "id", batch)
            found.update(r["id"] for r in await self.db.rows(f"SELECT id FROM releases WHERE {test}{keep}", params))
        return found

    async def require(self, release_id: int) -> None:
        if not await self.existing([release_id]):
            raise ReleaseGone(release_id)


_DEPLOY = "SELECT id, environment, name, url, date_started, date_finished FROM deploys"


def deploy_from(row: Row) -> Deploy:
    return Deploy(
        id=row["id"],
        environment=row["environment"],
        name=row["name"],
        url=row["url"],
        date_started=dt(row["date_started"]),
        date_finished=dt_required(row["date_finished"]),
    )


class Deploys:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    async def add(
        self,
        release_id: int,
        *,
        environment: str,
        name: str | None,
        url: str | None,
        date_started: datetime | None,
        date_finished: datetime,
    ) -> Deploy:
        row = await self.db.row(
            "INSERT INTO deploys (release_id, environment, name, url, date_started, date_finished)"
            " VALUES (:release, :environment, :name, :url, :started, :finished) RETURNING id",
            {
                "release": release_id,
                "environment": environment,
                "name": name,
                "url": url,
                "started": ts(date_started),
                "finished": ts(date_finished),
            },
        )
        assert row is not None
        return Deploy(
            id=row["id"],
            environment=environment,
            name=name,
            url=url,
            date_started=date_started,
            date_finished=date_finished,
        )

    async def page(self, release_id: int, *, offset: int = 0, limit: int = 100) -> list[Deploy]:
        rows = await self.db.rows(
            f"{_DEPLOY} WHERE release_id = :release ORDER BY date_finished DESC, id DESC LIMIT :limit OFFSET :offset",
            {"release": release_id, "limit": limit, "offset": offset},
        )
        return [deploy_from(r) for r in rows]

    async def environments(self, organization_id: int) -> set[str]:
        """The environments the organization's releases were deployed to (a deploy creates its
        environment, releases/endpoints/release_deploys.py)."""
        rows = await self.db.rows(
            "SELECT DISTINCT d.environment FROM deploys d JOIN releases r ON r.id = d.release_id"
            " WHERE r.organization_id = :org",
            {"org": organization_id},
        )
        return {r["environment"] for r in rows}

    async def count(self, release_id: int) -> int:
        row = await self.db.row(
            "SELECT count(*) AS n FROM deploys WHERE release_id = :release", {"release": release_id}
        )
        return int(row["n"]) if row else 0
