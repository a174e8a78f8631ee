"""Blob rows: which blobs the catalog knows, and the reference rule that says when one may go.

A blob is in use while a release file or a bundle member is read from it, an organization owns
it as a chunk, or it is a bundle's zip. Under the SQLite engine's single writer a freed blob
is deleted right after the commit that freed it, still under the writer lock, so no upload
can start referencing it in between (DESIGN invariant 5).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ....models import StoredBlob
from ..dialect import Db, ts, utcnow

_UNREFERENCED = """
    NOT EXISTS (SELECT 1 FROM release_files WHERE blob_sha1 = blobs.sha1)
    AND NOT EXISTS (SELECT 1 FROM artifact_bundle_files WHERE blob_sha1 = blobs.sha1)
    AND NOT EXISTS (SELECT 1 FROM chunk_owners WHERE sha1 = blobs.sha1)
    AND NOT EXISTS (SELECT 1 FROM artifact_bundles WHERE checksum = blobs.sha1)
"""
# Every sha1 a row says holds bytes: the same four references as _UNREFERENCED.
_REFERENCED = """
    SELECT blob_sha1 AS sha1 FROM release_files
    UNION SELECT blob_sha1 FROM artifact_bundle_files
    UNION SELECT sha1 FROM chunk_owners
    UNION SELECT checksum FROM artifact_bundles
"""


class BlobRows:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    async def add(self, blobs: Sequence[StoredBlob]) -> None:
        """Rows for blobs now in the blob store (an existing row stays as it is)."""
        now = ts(utcnow())
        distinct = {b.sha1: b for b in blobs}.values()
        await self.db.run_many(
            "INSERT INTO blobs (sha1, size, date_created) VALUES (:sha1, :size, :now) ON CONFLICT DO NOTHING",
            [{"sha1": b.sha1, "size": b.size, "now": now} for b in distinct],
        )

    async def sizes(self, sha1s: Iterable[str]) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for batch in self.db.dialect.batches(sha1s):
            test, params = self.db.dialect.in_list("sha1", "sha1", batch)
            rows = await self.db.rows(f"SELECT sha1, size FROM blobs WHERE {test}", params)
            sizes.update((r["sha1"], r["size"]) for r in rows)
        return sizes

    async def free(self, candidates: Iterable[str]) -> list[str]:
        """Delete the rows of the `candidates` nothing references any more; their sha1s."""
        freed = []
        for sha1 in dict.fromkeys(candidates):
            if await self.db.row(f"SELECT 1 AS free FROM blobs WHERE sha1 = :sha1 AND {_UNREFERENCED}", {"sha1": sha1}):
                freed.append(sha1)
        await self.db.run_many("DELETE FROM blobs WHERE sha1 = :sha1", [{"sha1": sha1} for sha1 in freed])
        return freed

    async def prune(self) -> int:
        """Drop every row nothing references; how many went."""
        return await self.db.run(f"DELETE FROM blobs WHERE {_UNREFERENCED}")

    async def all(self) -> frozenset[str]:
        return frozenset(r["sha1"] for r in await self.db.rows("SELECT sha1 FROM blobs"))

    async def referenced(self) -> set[str]:
        return {r["sha1"] for r in await self.db.rows(_REFERENCED)}
