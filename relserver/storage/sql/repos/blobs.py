"""Blob rows: which blobs the catalog knows, under which object name, and the reference rule
that says when one may go.

A blob is in use while a release file or a bundle member is read from it, an organization owns
it as a chunk, or it is a bundle's zip. Its sha1 is the row's key, so two processes storing the
same bytes at once end with one row: `add` is an upsert, and the object of the one whose name
did not win is the loser's to delete (DESIGN D10).

Two ways for a blob to go, chosen by the caller:
- `free`: the rows go now and their names are returned, for the caller to delete the bytes
  right after the commit. Only correct under one writer with names that are sha1s (SQLite, or
  a disk store behind the PostgreSQL writer lock): no upload can start referencing a freed blob
  in between.
- `mark_unreferenced`, then the collector: a blob whose last reference went is stamped
  `unreferenced_at`; `collectable` + `collect` delete rows stamped before a cutoff, re-checking
  in that transaction that nothing references them, and return their names. `add` clears the
  stamp, so a blob referenced again is never collected.
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
# What the blob store calls a row's bytes.
_NAME = "COALESCE(object_key, sha1)"
# Rows per multi-row upsert: 4 parameters each stays far below SQLite's 999 host parameters.
_ADD_BATCH = 200


class BlobRows:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    async def add(self, blobs: Sequence[StoredBlob]) -> list[StoredBlob]:
        """Rows for blobs now in the blob store, each referenced by this transaction: a new
        row, or the existing one of the same sha1 with its unreferenced stamp cleared (which
        takes its row lock on PostgreSQL, so a collector holding it goes first and this waits).

        Returns the given blobs whose object did not become the row's (another process stored
        the same bytes first, or the same bytes came twice): nothing will ever name those
        objects, and the caller deletes them."""
        winners: dict[str, str | None] = {}
        # In sha1 order: two transactions upserting overlapping sets lock the rows in one
        # order, so they queue instead of deadlocking (PostgreSQL).
        distinct = sorted({b.sha1: b for b in reversed(blobs)}.values(), key=lambda b: b.sha1)
        now = ts(utcnow())
        for start in range(0, len(distinct), _ADD_BATCH):
            batch = distinct[start : start + _ADD_BATCH]
            values = ", ".join(f"(:sha1_{i}, :size_{i}, :key_{i}, :now)" for i in range(len(batch)))
            params: dict[str, object] = {"now": now}
            for i, b in enumerate(batch):
                params.update({f"sha1_{i}": b.sha1, f"size_{i}": b.size, f"key_{i}": b.key})
            rows = await self.db.rows(
                f"INSERT INTO blobs (sha1, size, object_key, date_created) VALUES {values}"
                " ON CONFLICT (sha1) DO UPDATE SET unreferenced_at = NULL RETURNING sha1, object_key",
                params,
            )
            winners.update((r["sha1"], r["object_key"]) for r in rows)
        return [b for b in blobs if b.key is not None and winners.get(b.sha1) != b.key]

    async def sizes(self, sha1s: Iterable[str]) -> dict[str, int]:
        return {sha1: blob.size for sha1, blob in (await self.get(sha1s)).items()}

    async def get(self, sha1s: Iterable[str]) -> dict[str, StoredBlob]:
        """The rows of these sha1s (those that exist), with their object names."""
        found: dict[str, StoredBlob] = {}
        for batch in self.db.dialect.batches(sha1s):
            test, params = self.db.dialect.in_list("sha1", "sha1", batch)
            rows = await self.db.rows(f"SELECT sha1, size, object_key FROM blobs WHERE {test}", params)
            found.update((r["sha1"], StoredBlob(r["sha1"], r["size"], r["object_key"])) for r in rows)
        return found

    async def free(self, candidates: Iterable[str]) -> list[str]:
        """Delete the rows of the `candidates` nothing references any more; their names."""
        freed = []
        for sha1 in dict.fromkeys(candidates):
            row = await self.db.row(
                f"SELECT {_NAME} AS name FROM blobs WHERE sha1 = :sha1 AND {_UNREFERENCED}", {"sha1": sha1}
            )
            if row:
                freed.append((sha1, row["name"]))
        await self.db.run_many("DELETE FROM blobs WHERE sha1 = :sha1", [{"sha1": sha1} for sha1, _ in freed])
        return [name for _, name in freed]

    async def mark_unreferenced(self, candidates: Iterable[str], now: str | None = None) -> int:
        """Stamp the `candidates` nothing references any more (and not stamped yet) for the
        collector; how many were."""
        stamp = now or ts(utcnow())
        marked = 0
        # One statement per list batch (a release delete frees thousands), in sha1 order as
        # every writer of blob rows goes, so concurrent writers queue instead of deadlocking.
        for batch in self.db.dialect.batches(sorted(set(candidates))):
            test, params = self.db.dialect.in_list("sha1", "sha1", batch)
            marked += await self.db.run(
                f"UPDATE blobs SET unreferenced_at = :now WHERE {test} AND unreferenced_at IS NULL AND {_UNREFERENCED}",
                {**params, "now": stamp},
            )
        return marked

    async def collectable(self, cutoff: str, limit: int) -> list[str]:
        """Claim up to `limit` blobs stamped unreferenced before `cutoff` for this transaction
        (on PostgreSQL locked, skipping those another collector holds)."""
        rows = await self.db.rows(
            "SELECT sha1 FROM blobs WHERE unreferenced_at IS NOT NULL AND unreferenced_at < :cutoff"
            f" ORDER BY unreferenced_at LIMIT :limit{self.db.dialect.skip_locked}",
            {"cutoff": cutoff, "limit": limit},
        )
        return [r["sha1"] for r in rows]

    async def collect(self, sha1s: Iterable[str], cutoff: str) -> list[str]:
        """Delete the rows of these claimed blobs that are still unreferenced, stamped before
        `cutoff` (re-checked here: a reference may have come since the stamp); their names.
        A claimed blob that is referenced after all loses its stamp."""
        gone: list[str] = []
        for sha1 in dict.fromkeys(sha1s):
            row = await self.db.row(
                f"DELETE FROM blobs WHERE sha1 = :sha1 AND unreferenced_at IS NOT NULL"
                f" AND unreferenced_at < :cutoff AND {_UNREFERENCED} RETURNING {_NAME} AS name",
                {"sha1": sha1, "cutoff": cutoff},
            )
            if row:
                gone.append(row["name"])
            else:
                await self.db.run(
                    f"UPDATE blobs SET unreferenced_at = NULL WHERE sha1 = :sha1 AND NOT ({_UNREFERENCED})",
                    {"sha1": sha1},
                )
        return gone

    async def prune(self) -> int:
        """Drop every row nothing references; how many went."""
        return await self.db.run(f"DELETE FROM blobs WHERE {_UNREFERENCED}")

    async def mark_all_unreferenced(self) -> int:
        """Stamp every row nothing references (the start-up sweep on a shared catalog)."""
        return await self.db.run(
            f"UPDATE blobs SET unreferenced_at = :now WHERE unreferenced_at IS NULL AND {_UNREFERENCED}",
            {"now": ts(utcnow())},
        )

    async def all(self) -> frozenset[str]:
        return frozenset(r["sha1"] for r in await self.db.rows("SELECT sha1 FROM blobs"))

    async def names(self) -> frozenset[str]:
        """Every row's object name (what the blob store holds for the catalog)."""
        return frozenset(r["name"] for r in await self.db.rows(f"SELECT {_NAME} AS name FROM blobs"))

    async def named(self, names: Iterable[str]) -> set[str]:
        """Which of these object names a row holds (by the indexed columns)."""
        found: set[str] = set()
        for batch in self.db.dialect.batches(names):
            by_key, key_params = self.db.dialect.in_list("object_key", "key", batch)
            by_sha1, sha1_params = self.db.dialect.in_list("sha1", "sha1", batch)
            rows = await self.db.rows(
                f"SELECT {_NAME} AS name FROM blobs WHERE {by_key} OR (object_key IS NULL AND {by_sha1})",
                {**key_params, **sha1_params},
            )
            found.update(r["name"] for r in rows)
        return found

    async def referenced(self) -> set[str]:
        return {r["sha1"] for r in await self.db.rows(_REFERENCED)}

    async def claim_run(self, job: str, now: str, next_run: str) -> bool:
        """Whether this transaction may run the periodic `job` now (its time has come, and no
        other process claimed it first); if so, its next run is at `next_run`."""
        row = await self.db.row(
            "INSERT INTO maintenance_runs (job, next_run) VALUES (:job, :next) ON CONFLICT (job)"
            " DO UPDATE SET next_run = excluded.next_run WHERE maintenance_runs.next_run <= :now RETURNING job",
            {"job": job, "now": now, "next": next_run},
        )
        return row is not None
