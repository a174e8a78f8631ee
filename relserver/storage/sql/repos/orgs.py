"""Organizations and projects."""

from __future__ import annotations

from collections.abc import Iterable

from ....models import Organization, Project
from ..dialect import Db, Row, columns, dt_required, ts, utcnow

ORGANIZATION_COLUMNS = ("id", "slug", "name", "date_created")
PROJECT_COLUMNS = ("id", "organization_id", "slug", "name", "platform", "date_created")

_ORGANIZATION = f"SELECT {columns('o', ORGANIZATION_COLUMNS)} FROM organizations o"
_PROJECT = f"SELECT {columns('p', PROJECT_COLUMNS)} FROM projects p"


def organization_from(row: Row, prefix: str = "") -> Organization:
    return Organization(
        id=row[prefix + "id"],
        slug=row[prefix + "slug"],
        name=row[prefix + "name"],
        date_created=dt_required(row[prefix + "date_created"]),
    )


def project_from(row: Row, prefix: str = "") -> Project:
    return Project(
        id=row[prefix + "id"],
        organization_id=row[prefix + "organization_id"],
        slug=row[prefix + "slug"],
        name=row[prefix + "name"],
        platform=row[prefix + "platform"],
        date_created=dt_required(row[prefix + "date_created"]),
    )


# The largest id a 64-bit key column holds.
MAX_ID = 2**63 - 1


def ref_lookup(ref: str) -> tuple[str, int | str] | None:
    """The column and value a path's reference names: newer Sentry accepts an id or a slug
    wherever a slug goes (all digits → id). None when no row can match (digits no 64-bit key
    holds, or non-ASCII digits, which no slug or id is)."""
    if not ref.isdigit():
        return "slug", ref
    if not ref.isascii() or int(ref) > MAX_ID:
        return None
    return "id", int(ref)


class Organizations:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    async def get(self, ref: str) -> Organization | None:
        lookup = ref_lookup(ref)
        if lookup is None:
            return None
        column, value = lookup
        row = await self.db.row(f"{_ORGANIZATION} WHERE o.{column} = :ref", {"ref": value})
        return organization_from(row) if row else None

    async def ensure(self, slug: str) -> Organization:
        """Get or create by slug."""
        await self.db.run(
            "INSERT INTO organizations (slug, name, date_created) VALUES (:slug, :slug, :now) ON CONFLICT DO NOTHING",
            {"slug": slug, "now": ts(utcnow())},
        )
        row = await self.db.row(f"{_ORGANIZATION} WHERE o.slug = :slug", {"slug": slug})
        assert row is not None
        return organization_from(row)


class Projects:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    async def get(self, organization_id: int, ref: str) -> Project | None:
        lookup = ref_lookup(ref)
        if lookup is None:
            return None
        column, value = lookup
        row = await self.db.row(
            f"{_PROJECT} WHERE p.organization_id = :org AND p.{column} = :ref", {"org": organization_id, "ref": value}
        )
        return project_from(row) if row else None

    async def of_organization(self, organization_id: int) -> list[Project]:
        rows = await self.db.rows(
            f"{_PROJECT} WHERE p.organization_id = :org ORDER BY p.slug", {"org": organization_id}
        )
        return [project_from(r) for r in rows]

    async def ensure(self, organization_id: int, slugs: Iterable[str]) -> list[Project]:
        """Get or create each project by slug, in the order given."""
        found = []
        for slug in slugs:
            params = {"org": organization_id, "slug": slug, "now": ts(utcnow())}
            await self.db.run(
                "INSERT INTO projects (organization_id, slug, name, date_created)"
                " VALUES (:org, :slug, :slug, :now) ON CONFLICT DO NOTHING",
                params,
            )
            row = await self.db.row(f"{_PROJECT} WHERE p.organization_id = :org AND p.slug = :slug", params)
            assert row is not None
            found.append(project_from(row))
        return found

    async def of_release(self, release_id: int) -> list[Project]:
        rows = await self.db.rows(
            f"{_PROJECT} JOIN release_projects rp ON rp.project_id = p.id WHERE rp.release_id = :release ORDER BY p.id",
            {"release": release_id},
        )
        return [project_from(r) for r in rows]
