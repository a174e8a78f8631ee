"""Artifact bundles, the projects they belong to, and their members (DESIGN D9: a member is
a row saying where in the bundle's zip its bytes are)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ....models import ArtifactBundle, BundleFile, NewBundleFile, UploadedName
from ..dialect import Db, Row, columns, dt_required, from_json, to_json
from .files import zip_range_from, zip_range_params

BUNDLE_COLUMNS = (
    "id",
    "organization_id",
    "bundle_id",
    "checksum",
    "release",
    "dist",
    "file_count",
    "date_created",
    "date_modified",
)
_BUNDLE = f"SELECT {columns('ab', BUNDLE_COLUMNS)} FROM artifact_bundles ab"
_IN_PROJECT = "ab.id IN (SELECT artifact_bundle_id FROM artifact_bundle_projects WHERE project_id = :project)"
MEMBER = """
    SELECT bf.id, bf.artifact_bundle_id, bf.path, bf.url, bf.file_type, bf.headers, bf.debug_id,
           bf.sha1, bf.size, ab.dist, ab.date_modified,
           bf.blob_sha1, bf.data_offset, bf.compressed_size, bf.compression, bf.crc
    FROM artifact_bundle_files bf
    JOIN artifact_bundles ab ON ab.id = bf.artifact_bundle_id
"""

# ArtifactBundlesEndpoint sortBy values (api/endpoints/artifact_bundles.py).
BUNDLE_ORDERS = {
    "date_added": "ab.date_created ASC, ab.id ASC",
    "-date_added": "ab.date_created DESC, ab.id DESC",
    "date_modified": "ab.date_modified ASC, ab.id ASC",
    "-date_modified": "ab.date_modified DESC, ab.id DESC",
}


def bundle_from(row: Row) -> ArtifactBundle:
    return ArtifactBundle(
        id=row["id"],
        organization_id=row["organization_id"],
        bundle_id=row["bundle_id"],
        checksum=row["checksum"],
        release=row["release"],
        dist=row["dist"],
        file_count=row["file_count"],
        date_created=dt_required(row["date_created"]),
        date_modified=dt_required(row["date_modified"]),
    )


def member_from(row: Row) -> BundleFile:
    return BundleFile(
        id=row["id"],
        artifact_bundle_id=row["artifact_bundle_id"],
        path=row["path"],
        url=row["url"],
        file_type=row["file_type"],
        headers=from_json(row["headers"]),
        debug_id=row["debug_id"],
        sha1=row["sha1"],
        size=row["size"],
        dist=row["dist"],
        date_created=dt_required(row["date_modified"]),
        blob_sha1=row["blob_sha1"],
        zip_range=zip_range_from(row),
    )


class Bundles:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    async def by_checksum(self, organization_id: int, checksum: str) -> ArtifactBundle | None:
        row = await self.db.row(
            f"{_BUNDLE} WHERE ab.organization_id = :org AND ab.checksum = :checksum",
            {"org": organization_id, "checksum": checksum},
        )
        return bundle_from(row) if row else None

    async def by_bundle_id(self, organization_id: int, bundle_id: str) -> ArtifactBundle | None:
        """In any project of the organization."""
        row = await self.db.row(
            f"{_BUNDLE} WHERE ab.organization_id = :org AND ab.bundle_id = :bundle",
            {"org": organization_id, "bundle": bundle_id},
        )
        return bundle_from(row) if row else None

    async def get(self, organization_id: int, project_id: int, bundle_id: str) -> ArtifactBundle | None:
        row = await self.db.row(
            f"{_BUNDLE} WHERE ab.organization_id = :org AND ab.bundle_id = :bundle AND {_IN_PROJECT}",
            {"org": organization_id, "bundle": bundle_id, "project": project_id},
        )
        return bundle_from(row) if row else None

    async def get_by_pk(self, organization_id: int, project_id: int, pk: int) -> ArtifactBundle | None:
        row = await self.db.row(
            f"{_BUNDLE} WHERE ab.organization_id = :org AND ab.id = :pk AND {_IN_PROJECT}",
            {"org": organization_id, "pk": pk, "project": project_id},
        )
        return bundle_from(row) if row else None

    async def project_ids(self, bundle_pk: int) -> set[int]:
        rows = await self.db.rows(
            "SELECT project_id FROM artifact_bundle_projects WHERE artifact_bundle_id = :pk", {"pk": bundle_pk}
        )
        return {r["project_id"] for r in rows}

    async def page(
        self, organization_id: int, project_id: int, *, query: str | None, order: str, offset: int, limit: int
    ) -> list[ArtifactBundle]:
        """A project's bundles; `query` is a release or dist name, or a bundle or debug id."""
        where = ["ab.organization_id = :org", _IN_PROJECT]
        params: dict[str, Any] = {"org": organization_id, "project": project_id, "limit": limit, "offset": offset}
        if query:
            where.append(
                "(ab.release = :query OR ab.dist = :query OR ab.bundle_id = :lower OR ab.id IN"
                " (SELECT artifact_bundle_id FROM artifact_bundle_files WHERE debug_id = :lower))"
            )
            params.update(query=query, lower=query.lower())
        rows = await self.db.rows(
            f"{_BUNDLE} WHERE {' AND '.join(where)} ORDER BY {BUNDLE_ORDERS[order]} LIMIT :limit OFFSET :offset",
            params,
        )
        return [bundle_from(r) for r in rows]

    async def with_debug_id(self, organization_id: int, project_id: int, debug_id: str) -> list[ArtifactBundle]:
        """The newest bundle of the project holding a member with this debug id."""
        rows = await self.db.rows(
            f"{_BUNDLE} WHERE ab.organization_id = :org AND {_IN_PROJECT}"
            " AND ab.id IN (SELECT artifact_bundle_id FROM artifact_bundle_files WHERE debug_id = :debug_id)"
            " ORDER BY ab.date_modified DESC, ab.id DESC LIMIT 1",
            {"org": organization_id, "project": project_id, "debug_id": debug_id},
        )
        return [bundle_from(r) for r in rows]

    async def for_release(
        self, organization_id: int, project_id: int, release: str, dist: str | None, *, url: str | None, limit: int
    ) -> list[ArtifactBundle]:
        """The project's newest bundles of a release and dist (those indexing `url`, if given)."""
        dialect = self.db.dialect
        where = [
            "ab.organization_id = :org",
            _IN_PROJECT,
            "ab.release = :release",
            f"ab.dist {dialect.null_safe_eq} :dist",
        ]
        params: dict[str, Any] = {"org": organization_id, "project": project_id, "release": release, "dist": dist}
        if url is not None:
            where.append(
                "ab.id IN (SELECT artifact_bundle_id FROM artifact_bundle_files"
                f" WHERE {dialect.contains('url_folded', ':url')})"
            )
            params["url"] = url.casefold()
        rows = await self.db.rows(
            f"{_BUNDLE} WHERE {' AND '.join(where)} ORDER BY ab.date_modified DESC, ab.id DESC LIMIT :limit",
            {**params, "limit": limit},
        )
        return [bundle_from(r) for r in rows]

    async def of_release(self, organization_id: int, version: str) -> list[ArtifactBundle]:
        rows = await self.db.rows(
            f"{_BUNDLE} WHERE ab.organization_id = :org AND ab.release = :release",
            {"org": organization_id, "release": version},
        )
        return [bundle_from(r) for r in rows]

    async def has_dist(self, organization_id: int, version: str, dist: str) -> bool:
        row = await self.db.row(
            "SELECT 1 AS found FROM artifact_bundles"
            " WHERE organization_id = :org AND release = :release AND dist = :dist",
            {"org": organization_id, "release": version, "dist": dist},
        )
        return row is not None

    # --- writes -----------------------------------------------------------------------------

    async def create(
        self, organization_id: int, bundle_id: str, checksum: str, release: str | None, dist: str | None, now: str
    ) -> int:
        row = await self.db.row(
            "INSERT INTO artifact_bundles (organization_id, bundle_id, checksum, release, dist, file_count,"
            " date_created, date_modified) VALUES (:org, :bundle, :checksum, :release, :dist, 0, :now, :now)"
            " RETURNING id",
            {
                "org": organization_id,
                "bundle": bundle_id,
                "checksum": checksum,
                "release": release,
                "dist": dist,
                "now": now,
            },
        )
        assert row is not None
        return int(row["id"])

    async def replace(self, pk: int, checksum: str, release: str | None, dist: str | None, now: str) -> None:
        """New content for an existing bundle: its members go (the caller adds the new ones)."""
        await self.db.run("DELETE FROM artifact_bundle_files WHERE artifact_bundle_id = :pk", {"pk": pk})
        await self.db.run(
            "UPDATE artifact_bundles SET checksum = :checksum, release = :release, dist = :dist, file_count = 0,"
            " date_modified = :now WHERE id = :pk",
            {"pk": pk, "checksum": checksum, "release": release, "dist": dist, "now": now},
        )

    async def link(self, pk: int, project_ids: Iterable[int]) -> None:
        await self.db.run_many(
            "INSERT INTO artifact_bundle_projects (artifact_bundle_id, project_id) VALUES (:pk, :project)"
            " ON CONFLICT DO NOTHING",
            [{"pk": pk, "project": p} for p in project_ids],
        )

    async def add_members(self, pk: int, checksum: str, files: Sequence[NewBundleFile]) -> None:
        """Members of bundle `pk`, whose zip is the blob `checksum`; the file count grows by them."""
        await self.db.run_many(
            "INSERT INTO artifact_bundle_files (artifact_bundle_id, path, url, url_folded, file_type, headers,"
            " debug_id, blob_sha1, sha1, size, data_offset, compressed_size, compression, crc)"
            " VALUES (:pk, :path, :url, :folded, :type, :headers, :debug_id, :blob, :sha1, :size, :data_offset,"
            " :compressed_size, :compression, :crc)",
            (
                {
                    "pk": pk,
                    "path": f.path,
                    "url": f.url,
                    "folded": f.url.casefold(),
                    "type": f.file_type,
                    "headers": to_json(f.headers),
                    "debug_id": f.debug_id,
                    "blob": checksum if f.zip_range else f.blob.sha1,
                    "sha1": f.blob.sha1,
                    "size": f.blob.size,
                    **zip_range_params(f.zip_range),
                }
                for f in files
            ),
        )
        await self.db.run(
            "UPDATE artifact_bundles SET file_count = file_count + :n WHERE id = :pk", {"pk": pk, "n": len(files)}
        )

    async def member_blobs(self, pk: int) -> list[str]:
        rows = await self.db.rows(
            "SELECT DISTINCT blob_sha1 FROM artifact_bundle_files WHERE artifact_bundle_id = :pk", {"pk": pk}
        )
        return [r["blob_sha1"] for r in rows]

    async def unlink(self, pk: int, project_id: int) -> bool:
        """Unlink a project; False when it was not linked."""
        removed = await self.db.run(
            "DELETE FROM artifact_bundle_projects WHERE artifact_bundle_id = :pk AND project_id = :project",
            {"pk": pk, "project": project_id},
        )
        return removed > 0

    async def delete(self, pk: int) -> None:
        """The bundle and, by cascade, its members and project links."""
        await self.db.run("DELETE FROM artifact_bundles WHERE id = :pk", {"pk": pk})

    async def by_pk(self, pk: int) -> ArtifactBundle | None:
        row = await self.db.row(f"{_BUNDLE} WHERE ab.id = :pk", {"pk": pk})
        return bundle_from(row) if row else None


class BundleMembers:
    """A bundle's own listing of its members (project_artifact_bundle_files.py)."""

    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    async def page(
        self, bundle_pk: int, *, query: str | None = None, offset: int = 0, limit: int = 100
    ) -> list[BundleFile]:
        dialect = self.db.dialect
        where = ["bf.artifact_bundle_id = :pk"]
        params: dict[str, Any] = {"pk": bundle_pk, "limit": limit, "offset": offset}
        if query:
            where.append(
                f"({dialect.contains('bf.url_folded', ':folded')} OR {dialect.contains('bf.debug_id', ':lower')})"
            )
            params.update(folded=query.casefold(), lower=query.lower())
        rows = await self.db.rows(
            f"{MEMBER} WHERE {' AND '.join(where)} ORDER BY bf.path LIMIT :limit OFFSET :offset", params
        )
        return [member_from(r) for r in rows]

    async def count_all(self) -> int:
        row = await self.db.row("SELECT count(*) AS n FROM artifact_bundle_files")
        return int(row["n"]) if row else 0

    async def get(self, bundle_pk: int, path: str) -> BundleFile | None:
        row = await self.db.row(
            f"{MEMBER} WHERE bf.artifact_bundle_id = :pk AND bf.path = :path", {"pk": bundle_pk, "path": path}
        )
        return member_from(row) if row else None

    async def by_debug_id(self, bundle_pk: int, debug_id: str, file_type: str) -> BundleFile | None:
        """The bundle's member of this type carrying this debug id (source_by_debug_id, symbolic)."""
        row = await self.db.row(
            f"{MEMBER} WHERE bf.artifact_bundle_id = :pk AND bf.debug_id = :debug_id AND bf.file_type = :type"
            " ORDER BY bf.path LIMIT 1",
            {"pk": bundle_pk, "debug_id": debug_id, "type": file_type},
        )
        return member_from(row) if row else None

    async def by_url(self, bundle_pk: int, url: str) -> BundleFile | None:
        """The bundle's member whose manifest `url` is exactly this one (case-sensitive)."""
        row = await self.db.row(
            f"{MEMBER} WHERE bf.artifact_bundle_id = :pk AND bf.url = :url ORDER BY bf.path LIMIT 1",
            {"pk": bundle_pk, "url": url},
        )
        return member_from(row) if row else None

    async def names_in_project(
        self, organization_id: int, project_id: int, needle: str, limit: int
    ) -> list[UploadedName]:
        """Member URLs of the project's bundles containing `needle` case-insensitively, with
        each bundle's release and dist, newest bundle first."""
        rows = await self.db.rows(
            "SELECT DISTINCT bf.url, ab.release, ab.dist, ab.date_modified, ab.id FROM artifact_bundle_files bf"
            " JOIN artifact_bundles ab ON ab.id = bf.artifact_bundle_id"
            f" WHERE ab.organization_id = :org AND {_IN_PROJECT}"
            f" AND {self.db.dialect.contains('bf.url_folded', ':needle')}"
            " ORDER BY ab.date_modified DESC, ab.id DESC, bf.url LIMIT :limit",
            {"org": organization_id, "project": project_id, "needle": needle.casefold(), "limit": limit},
        )
        return [UploadedName("artifact_bundle", r["url"], r["release"], r["dist"]) for r in rows]
