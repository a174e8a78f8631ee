"""Releases, the projects they are linked to, and their deploys."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ....models import Deploy, Organization, Project, Release
from ..dialect import Db, Row, columns, dt, dt_required, ts, utcnow
from .orgs import ORGANIZATION_COLUMNS, PROJECT_COLUMNS, organization_from, project_from, ref_lookup

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
)
_RELEASE = f"SELECT {columns('r', RELEASE_COLUMNS)} FROM releases r"


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
    )


def _like_pattern(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


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

    async def scope(
        self, org_ref: str, project_ref: str | None, version: str
    ) -> tuple[Organization, Project | None, Release, bool] | None:
        """Organization, project, release and whether they are linked, in one query; None
        when any of them does not exist."""
        org_lookup = ref_lookup(org_ref)
        project_lookup = ref_lookup(project_ref) if project_ref is not None else ("id", None)
        if org_lookup is None or project_lookup is None:
            return None
        (org_column, org_value), (project_column, project_value) = org_lookup, project_lookup
        row = await self.db.row(
            f"SELECT {columns('o', ORGANIZATION_COLUMNS, 'o_')}, {columns('p', PROJECT_COLUMNS, 'p_')},"
            f" {columns('r', RELEASE_COLUMNS, 'r_')},"
            " EXISTS (SELECT 1 FROM release_projects rp WHERE rp.release_id = r.id AND rp.project_id = p.id)"
            " AS linked"
            " FROM organizations o JOIN releases r ON r.organization_id = o.id AND r.version = :version"
            f" LEFT JOIN projects p ON p.organization_id = o.id AND p.{project_column} = :project"
            f" WHERE o.{org_column} = :org",
            {"version": version, "project": project_value, "org": org_value},
        )
        if row is None:
            return None
        project = project_from(row, "p_") if row["p_id"] is not None else None
        if project_ref is not None and project is None:
            return None
        return organization_from(row, "o_"), project, release_from(row, "r_"), bool(row["linked"])

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
    ) -> tuple[Release, bool]:
        """The release, and True when it was created (an existing one keeps its values)."""
        created = await self.db.run(
            "INSERT INTO releases (organization_id, version, ref, url, user_agent, date_created, date_released)"
            " VALUES (:org, :version, :ref, :url, :user_agent, :now, :date_released) ON CONFLICT DO NOTHING",
            {
                "org": organization_id,
                "version": version,
                "ref": ref,
                "url": url,
                "user_agent": user_agent,
                "now": ts(utcnow()),
                "date_released": ts(date_released),
            },
        )
        release = await self.get(organization_id, version)
        assert release is not None
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
    ) -> list[Release]:
        """Newest first: by creation (organization list) or by release date (project list);
        `in_projects` keeps only releases of those projects."""
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
        if query:
            where.append(f"r.version {self.db.dialect.like} :query ESCAPE '\\'")
            params["query"] = _like_pattern(query)
        if status is not None:
            where.append("r.status = :status")
            params["status"] = status
        rows = await self.db.rows(
            f"{_RELEASE} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT :limit OFFSET :offset", params
        )
        return [release_from(r) for r in rows]

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
        """Which of these releases still exist (callers looked them up before this transaction)."""
        found: set[int] = set()
        for batch in self.db.dialect.batches(release_ids):
            test, params = self.db.dialect.in_list("id", "id", batch)
            found.update(r["id"] for r in await self.db.rows(f"SELECT id FROM releases WHERE {test}", params))
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

    async def count(self, release_id: int) -> int:
        row = await self.db.row(
            "SELECT count(*) AS n FROM deploys WHERE release_id = :release", {"release": release_id}
        )
        return int(row["n"]) if row else 0
