"""Release files (Sentry's ReleaseFile: unique per release and ident) and their dists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ....models import ReleaseFile, UploadedName, ZipRange
from ..dialect import Db, Row, UniqueViolation, dt_required, from_json, storable_terms, to_json

_FILE = """
    SELECT f.id, f.release_id, f.name, d.name AS dist, f.headers, f.size, f.sha1, f.date_created,
           f.blob_sha1, f.data_offset, f.compressed_size, f.compression, f.crc
    FROM release_files f
    LEFT JOIN dists d ON d.id = f.dist_id
"""


class DuplicateReleaseFile(Exception):
    """A release file with this (release, name, dist) — Sentry's ident — already exists."""


def zip_range_from(row: Row) -> ZipRange | None:
    """Where in its blob a member's bytes are, or None for bytes in a blob of their own."""
    if row["data_offset"] is None:
        return None
    return ZipRange(
        offset=row["data_offset"],
        compressed_size=row["compressed_size"],
        compression=row["compression"],
        crc=row["crc"],
    )


def zip_range_params(at: ZipRange | None) -> dict[str, Any]:
    if at is None:
        return {"data_offset": None, "compressed_size": None, "compression": None, "crc": None}
    return {
        "data_offset": at.offset,
        "compressed_size": at.compressed_size,
        "compression": at.compression,
        "crc": at.crc,
    }


def release_file_from(row: Row) -> ReleaseFile:
    return ReleaseFile(
        id=row["id"],
        release_id=row["release_id"],
        name=row["name"],
        dist=row["dist"],
        headers=from_json(row["headers"]),
        size=row["size"],
        sha1=row["sha1"],
        date_created=dt_required(row["date_created"]),
        blob_sha1=row["blob_sha1"],
        zip_range=zip_range_from(row),
    )


@dataclass(frozen=True, slots=True)
class NewReleaseFile:
    """A row to write: content `sha1`/`size`, held by `blob_sha1` (at `zip_range` if a zip)."""

    organization_id: int
    release_id: int
    dist_id: int | None
    name: str
    ident: str
    headers: dict[str, str]
    sha1: str
    size: int
    blob_sha1: str
    date_created: str
    zip_range: ZipRange | None = None

    def params(self) -> dict[str, Any]:
        return {
            "org": self.organization_id,
            "release": self.release_id,
            "dist": self.dist_id,
            "name": self.name,
            "folded": self.name.casefold(),
            "ident": self.ident,
            "headers": to_json(self.headers),
            "sha1": self.sha1,
            "size": self.size,
            "blob": self.blob_sha1,
            "now": self.date_created,
            **zip_range_params(self.zip_range),
        }


_INSERT = """
    INSERT INTO release_files (organization_id, release_id, dist_id, name, name_folded, ident, blob_sha1,
        sha1, size, data_offset, compressed_size, compression, crc, headers, date_created)
    VALUES (:org, :release, :dist, :name, :folded, :ident, :blob, :sha1, :size, :data_offset,
        :compressed_size, :compression, :crc, :headers, :now)
"""
# Sentry's release-bundle assembly before release archives replaces a file's content (no 409).
_UPSERT = (
    _INSERT
    + """ ON CONFLICT (release_id, ident) DO UPDATE SET blob_sha1 = excluded.blob_sha1,
        sha1 = excluded.sha1, size = excluded.size, data_offset = excluded.data_offset,
        compressed_size = excluded.compressed_size, compression = excluded.compression,
        crc = excluded.crc, headers = excluded.headers, date_created = excluded.date_created"""
)


class ReleaseFiles:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    # --- dists ------------------------------------------------------------------------------

    async def ensure_dist(self, release_id: int, name: str, now: str) -> int:
        params = {"release": release_id, "name": name, "now": now}
        await self.db.run(
            "INSERT INTO dists (release_id, name, date_created) VALUES (:release, :name, :now) ON CONFLICT DO NOTHING",
            params,
        )
        row = await self.db.row("SELECT id FROM dists WHERE release_id = :release AND name = :name", params)
        assert row is not None
        return int(row["id"])

    async def dist_exists(self, release_id: int, name: str) -> bool:
        row = await self.db.row(
            "SELECT 1 AS found FROM dists WHERE release_id = :release AND name = :name",
            {"release": release_id, "name": name},
        )
        return row is not None

    # --- reads ------------------------------------------------------------------------------

    async def get(self, release_id: int, file_id: int) -> ReleaseFile | None:
        row = await self.db.row(
            f"{_FILE} WHERE f.release_id = :release AND f.id = :id", {"release": release_id, "id": file_id}
        )
        return release_file_from(row) if row else None

    async def get_in_project(self, project_id: int, file_id: int) -> ReleaseFile | None:
        row = await self.db.row(
            f"{_FILE} WHERE f.id = :id AND f.release_id IN"
            " (SELECT release_id FROM release_projects WHERE project_id = :project)",
            {"id": file_id, "project": project_id},
        )
        return release_file_from(row) if row else None

    async def find(self, release_id: int, ident: str) -> ReleaseFile | None:
        row = await self.db.row(
            f"{_FILE} WHERE f.release_id = :release AND f.ident = :ident", {"release": release_id, "ident": ident}
        )
        return release_file_from(row) if row else None

    async def page(
        self, release_id: int, *, offset: int, limit: int, queries: Sequence[str] = (), checksums: Sequence[str] = ()
    ) -> list[ReleaseFile]:
        """Ordered by name; `queries` match case-insensitively (any), `checksums` exactly.

        The page's ids come from the covering index alone, so a deep OFFSET skips index
        entries rather than joined rows; only the page itself is joined."""
        source, where, params = self._filters(release_id, queries, checksums)
        rows = await self.db.rows(
            f"WITH page AS (SELECT id FROM {source} WHERE {where} ORDER BY name, id LIMIT :limit OFFSET :offset)"
            f"{_FILE} JOIN page ON page.id = f.id ORDER BY f.name, f.id",
            {**params, "limit": limit, "offset": offset},
        )
        return [release_file_from(r) for r in rows]

    async def count(self, release_id: int, *, queries: Sequence[str] = (), checksums: Sequence[str] = ()) -> int:
        source, where, params = self._filters(release_id, queries, checksums)
        row = await self.db.row(f"SELECT count(*) AS n FROM {source} WHERE {where}", params)
        return int(row["n"]) if row else 0

    async def matching_url(self, release_id: int, url: str, dist: str | None, limit: int) -> list[ReleaseFile]:
        """Files of exactly this dist (None: only files without one) whose name contains `url`
        case-insensitively, oldest first; the dist is filtered before the limit, as Sentry's
        get_legacy_releasefile_by_file_url does (api/endpoints/artifact_lookup.py)."""
        dialect = self.db.dialect
        rows = await self.db.rows(
            f"{_FILE} WHERE f.release_id = :release AND d.name {dialect.null_safe_eq} :dist"
            f" AND {dialect.contains('f.name_folded', ':url')} ORDER BY f.id LIMIT :limit",
            {"release": release_id, "dist": dist, "url": url.casefold(), "limit": limit},
        )
        return [release_file_from(r) for r in rows]

    async def names_in_project(self, project_id: int, needle: str, limit: int) -> list[UploadedName]:
        """Names of the project's releases' files containing `needle` case-insensitively,
        with their release and dist, newest first."""
        rows = await self.db.rows(
            "SELECT f.name, r.version, d.name AS dist FROM release_files f"
            " JOIN releases r ON r.id = f.release_id LEFT JOIN dists d ON d.id = f.dist_id"
            " WHERE f.release_id IN (SELECT release_id FROM release_projects WHERE project_id = :project)"
            f" AND {self.db.dialect.contains('f.name_folded', ':needle')}"
            " ORDER BY f.id DESC LIMIT :limit",
            {"project": project_id, "needle": needle.casefold(), "limit": limit},
        )
        return [UploadedName("release_file", r["name"], r["version"], r["dist"]) for r in rows]

    async def count_all(self) -> int:
        row = await self.db.row("SELECT count(*) AS n FROM release_files")
        return int(row["n"]) if row else 0

    def _filters(
        self, release_id: int, queries: Sequence[str], checksums: Sequence[str]
    ) -> tuple[str, str, dict[str, Any]]:
        """(FROM, WHERE, params) selecting a release's files by `query` terms and checksums."""
        dialect = self.db.dialect
        source = "release_files"
        where = ["release_id = :release"]
        params: dict[str, Any] = {"release": release_id}
        terms = storable_terms(dialect, [q.casefold() for q in queries])
        if terms is None:
            return source, "0 = 1", params
        folded = terms
        indexed = dialect.name_search(folded) if folded and dialect.name_search else None
        if indexed is not None:
            source, search_params = indexed
            params.update(search_params)
        elif folded:
            where.append("(" + " OR ".join(dialect.contains("name_folded", f":q{i}") for i in range(len(folded))) + ")")
            params.update({f"q{i}": q for i, q in enumerate(folded)})
        if checksums:
            test, values = dialect.in_list("sha1", "checksum", checksums)
            where.append(test)
            params.update(values)
        return source, " AND ".join(where), params

    # --- writes -----------------------------------------------------------------------------

    async def taken_idents(self, release_id: int, idents: Iterable[str]) -> dict[str, int]:
        """Which of these idents the release has, with their file ids."""
        found: dict[str, int] = {}
        for batch in self.db.dialect.batches(idents):
            test, params = self.db.dialect.in_list("ident", "ident", batch)
            rows = await self.db.rows(
                f"SELECT ident, id FROM release_files WHERE release_id = :release AND {test}",
                {**params, "release": release_id},
            )
            found.update((r["ident"], r["id"]) for r in rows)
        return found

    async def insert_many(self, files: Sequence[NewReleaseFile]) -> None:
        """New rows; the caller has checked the idents are free (under its write transaction)."""
        await self.db.run_many(_INSERT, [f.params() for f in files])

    async def upsert(self, file: NewReleaseFile) -> str | None:
        """Write the row, replacing the content of an existing one; the blob it held before."""
        old = await self.db.row(
            "SELECT blob_sha1 FROM release_files WHERE release_id = :release AND ident = :ident",
            {"release": file.release_id, "ident": file.ident},
        )
        await self.db.run(_UPSERT, file.params())
        return str(old["blob_sha1"]) if old else None

    async def dist_of(self, release_id: int, file_id: int) -> tuple[bool, str | None]:
        """Whether the file exists, and its dist."""
        row = await self.db.row(
            "SELECT d.name AS dist FROM release_files f LEFT JOIN dists d ON d.id = f.dist_id"
            " WHERE f.release_id = :release AND f.id = :id",
            {"release": release_id, "id": file_id},
        )
        return (row is not None, row["dist"] if row else None)

    async def rename(self, file_id: int, name: str, ident: str) -> None:
        """Raises DuplicateReleaseFile when the release has the new ident already."""
        try:
            await self.db.run(
                "UPDATE release_files SET name = :name, name_folded = :folded, ident = :ident WHERE id = :id",
                {"name": name, "folded": name.casefold(), "ident": ident, "id": file_id},
            )
        except UniqueViolation as exc:
            raise DuplicateReleaseFile(name) from exc

    async def blobs_of(self, release_id: int, file_id: int | None = None) -> list[str]:
        """The blobs the release's files (or one of them) are read from."""
        if file_id is None:
            rows = await self.db.rows(
                "SELECT DISTINCT blob_sha1 FROM release_files WHERE release_id = :release", {"release": release_id}
            )
        else:
            rows = await self.db.rows(
                "SELECT blob_sha1 FROM release_files WHERE release_id = :release AND id = :id",
                {"release": release_id, "id": file_id},
            )
        return [r["blob_sha1"] for r in rows]

    async def delete(self, release_id: int, file_id: int | None = None) -> int:
        """The release's files (or one of them); how many went."""
        if file_id is None:
            return await self.db.run("DELETE FROM release_files WHERE release_id = :release", {"release": release_id})
        return await self.db.run(
            "DELETE FROM release_files WHERE release_id = :release AND id = :id", {"release": release_id, "id": file_id}
        )
