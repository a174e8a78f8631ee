"""Read-only summaries across aggregates for the web UI: organizations with their projects'
counts, a release's counts and dists, a project's bundle members by debug id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ....models import BundleFile, Organization
from ..dialect import Db, dt
from .bundles import MEMBER, member_from
from .orgs import ORGANIZATION_COLUMNS, organization_from

_ORGANIZATIONS = f"SELECT {', '.join(ORGANIZATION_COLUMNS)} FROM organizations"


@dataclass(frozen=True, slots=True)
class ProjectCounts:
    project_id: int
    releases: int
    release_files: int
    bundles: int
    last_upload: datetime | None


@dataclass(frozen=True, slots=True)
class ReleaseCounts:
    release_id: int
    files: int
    bundles: int
    dists: tuple[str, ...]


class Summaries:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    async def organizations(self, slug: str | None = None) -> list[Organization]:
        """Every organization by slug, or only the one named."""
        if slug is None:
            rows = await self.db.rows(f"{_ORGANIZATIONS} ORDER BY slug")
        else:
            rows = await self.db.rows(f"{_ORGANIZATIONS} WHERE slug = :slug", {"slug": slug})
        return [organization_from(r) for r in rows]

    async def project_counts(self, organization_id: int) -> dict[int, ProjectCounts]:
        """Per project of the organization: linked releases, their files, its bundles, and
        when the newest of those arrived. Every count reads an index
        (release_projects_by_project, release_files_by_name, artifact_bundle_projects_by_project)."""
        rows = await self.db.rows(
            "SELECT p.id,"
            " (SELECT count(*) FROM release_projects rp WHERE rp.project_id = p.id) AS releases,"
            " (SELECT count(*) FROM release_projects rp JOIN release_files f ON f.release_id = rp.release_id"
            "   WHERE rp.project_id = p.id) AS release_files,"
            " (SELECT count(*) FROM artifact_bundle_projects abp WHERE abp.project_id = p.id) AS bundles,"
            " (SELECT max(ab.date_modified) FROM artifact_bundle_projects abp"
            "   JOIN artifact_bundles ab ON ab.id = abp.artifact_bundle_id WHERE abp.project_id = p.id) AS last_bundle,"
            " (SELECT max(r.date_created) FROM release_projects rp JOIN releases r ON r.id = rp.release_id"
            "   WHERE rp.project_id = p.id) AS last_release"
            " FROM projects p WHERE p.organization_id = :org",
            {"org": organization_id},
        )
        found = {}
        for r in rows:
            dates = [d for d in (dt(r["last_bundle"]), dt(r["last_release"])) if d is not None]
            found[r["id"]] = ProjectCounts(
                project_id=r["id"],
                releases=int(r["releases"]),
                release_files=int(r["release_files"]),
                bundles=int(r["bundles"]),
                last_upload=max(dates) if dates else None,
            )
        return found

    async def release_counts(self, organization_id: int, release_id: int, version: str) -> ReleaseCounts:
        """A release's own files, the bundles tied to it and the dists either names."""
        row = await self.db.row(
            "SELECT (SELECT count(*) FROM release_files WHERE release_id = :release) AS files,"
            " (SELECT count(*) FROM artifact_bundles WHERE organization_id = :org AND release = :version) AS bundles",
            {"release": release_id, "org": organization_id, "version": version},
        )
        dists = await self.db.rows(
            "SELECT name FROM dists WHERE release_id = :release"
            " UNION SELECT dist AS name FROM artifact_bundles"
            " WHERE organization_id = :org AND release = :version AND dist IS NOT NULL ORDER BY name",
            {"release": release_id, "org": organization_id, "version": version},
        )
        assert row is not None
        return ReleaseCounts(
            release_id=release_id,
            files=int(row["files"]),
            bundles=int(row["bundles"]),
            dists=tuple(r["name"] for r in dists),
        )

    async def members_with_debug_id(
        self, organization_id: int, project_id: int, debug_id: str, *, limit: int
    ) -> list[BundleFile]:
        """Members of the project's bundles carrying this debug id, newest bundle first
        (artifact_bundle_files_by_debug_id)."""
        rows = await self.db.rows(
            f"{MEMBER} WHERE bf.debug_id = :debug_id AND ab.organization_id = :org AND ab.id IN"
            " (SELECT artifact_bundle_id FROM artifact_bundle_projects WHERE project_id = :project)"
            " ORDER BY ab.date_modified DESC, ab.id DESC, bf.path LIMIT :limit",
            {"debug_id": debug_id, "org": organization_id, "project": project_id, "limit": limit},
        )
        return [member_from(r) for r in rows]
