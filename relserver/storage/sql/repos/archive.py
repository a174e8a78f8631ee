"""A release's archive entries: the members of the artifact bundles tied to it, as its file
list shows them (DESIGN D1), newest bundle first per (dist, url)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ....models import BundleFile
from ..dialect import Db, storable_terms
from .bundles import MEMBER, member_from


class ArchiveEntries:
    __slots__ = ("_latest", "db")

    def __init__(self, db: Db) -> None:
        self.db = db
        # A member that no newer bundle of the same release and dist overrides (by URL).
        self._latest = f"""NOT EXISTS (
            SELECT 1 FROM artifact_bundle_files bf2 JOIN artifact_bundles ab2 ON ab2.id = bf2.artifact_bundle_id
            WHERE ab2.organization_id = ab.organization_id AND ab2.release = ab.release
              AND ab2.dist {db.dialect.null_safe_eq} ab.dist AND bf2.url = bf.url
              AND (ab2.date_modified > ab.date_modified
                   OR (ab2.date_modified = ab.date_modified AND ab2.id > ab.id)))"""

    async def page(
        self,
        organization_id: int,
        version: str,
        *,
        offset: int,
        limit: int,
        queries: Sequence[str] = (),
        checksums: Sequence[str] = (),
    ) -> list[BundleFile]:
        """Members of the release's bundles, dists first, then by URL."""
        dialect = self.db.dialect
        where = [self._latest, "ab.organization_id = :org", "ab.release = :release"]
        params: dict[str, Any] = {"org": organization_id, "release": version, "limit": limit, "offset": offset}
        terms = storable_terms(self.db.dialect, queries)
        if terms is None:
            return []
        queries = terms
        if queries:
            where.append(
                "(" + " OR ".join(dialect.contains("bf.url_folded", f":q{i}") for i in range(len(queries))) + ")"
            )
            params.update({f"q{i}": q.casefold() for i, q in enumerate(queries)})
        if checksums:
            # Sentry tests archive entries with "value in sha1": a prefix matches (a quirk it has).
            where.append("(" + " OR ".join(dialect.contains("bf.sha1", f":c{i}") for i in range(len(checksums))) + ")")
            params.update({f"c{i}": c for i, c in enumerate(checksums)})
        rows = await self.db.rows(
            f"{MEMBER} WHERE {' AND '.join(where)}"
            " ORDER BY (ab.dist IS NULL), ab.dist, bf.url LIMIT :limit OFFSET :offset",
            params,
        )
        return [member_from(r) for r in rows]

    async def get(self, organization_id: int, version: str, dist: str | None, url: str) -> BundleFile | None:
        row = await self.db.row(
            f"{MEMBER} WHERE {self._latest} AND ab.organization_id = :org AND ab.release = :release"
            f" AND ab.dist {self.db.dialect.null_safe_eq} :dist AND bf.url = :url",
            {"org": organization_id, "release": version, "dist": dist, "url": url},
        )
        return member_from(row) if row else None

    async def remove(self, organization_id: int, version: str, dist: str | None, url: str) -> tuple[int, set[str]]:
        """Remove a URL from every bundle of the release and dist (Sentry: from the dist's
        artifact index); how many members went and the blobs they were read from."""
        rows = await self.db.rows(
            "SELECT bf.id, bf.blob_sha1, bf.artifact_bundle_id FROM artifact_bundle_files bf"
            " JOIN artifact_bundles ab ON ab.id = bf.artifact_bundle_id"
            " WHERE ab.organization_id = :org AND ab.release = :release"
            f" AND ab.dist {self.db.dialect.null_safe_eq} :dist AND bf.url = :url",
            {"org": organization_id, "release": version, "dist": dist, "url": url},
        )
        await self.db.run_many("DELETE FROM artifact_bundle_files WHERE id = :id", [{"id": r["id"]} for r in rows])
        await self.db.run_many(
            "UPDATE artifact_bundles SET file_count ="
            " (SELECT count(*) FROM artifact_bundle_files WHERE artifact_bundle_id = artifact_bundles.id)"
            " WHERE id = :pk",
            [{"pk": pk} for pk in {r["artifact_bundle_id"] for r in rows}],
        )
        return len(rows), {r["blob_sha1"] for r in rows}
