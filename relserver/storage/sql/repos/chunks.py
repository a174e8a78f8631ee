"""Chunks an organization uploaded (it may assemble only its own, chunk.py) and assembly
states, kept so polling works across a restart (Sentry keeps them in a cache)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ....models import AssembleTask, StoredBlob
from ..dialect import Db, dt_required, from_json, to_json, ts, utcnow


class Chunks:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    async def own(self, organization_id: int, blobs: Sequence[StoredBlob]) -> None:
        """Record the organization as owner of these chunks (their blob rows exist)."""
        now = ts(utcnow())
        await self.db.run_many(
            "INSERT INTO chunk_owners (organization_id, sha1, date_created) VALUES (:org, :sha1, :now)"
            " ON CONFLICT DO NOTHING",
            # In sha1 order, as Blobs.add: concurrent owners of overlapping chunks queue, never deadlock.
            [{"org": organization_id, "sha1": sha1, "now": now} for sha1 in sorted({b.sha1 for b in blobs})],
        )

    async def owned(self, organization_id: int, sha1s: Iterable[str]) -> set[str]:
        owned: set[str] = set()
        for batch in self.db.dialect.batches(sha1s):
            test, params = self.db.dialect.in_list("sha1", "sha1", batch)
            rows = await self.db.rows(
                f"SELECT sha1 FROM chunk_owners WHERE organization_id = :org AND {test}",
                {**params, "org": organization_id},
            )
            owned.update(r["sha1"] for r in rows)
        return owned


class AssembleTasks:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    async def get(self, organization_id: int, kind: str, checksum: str) -> AssembleTask | None:
        row = await self.db.row(
            "SELECT state, detail, date_updated FROM assemble_tasks"
            " WHERE organization_id = :org AND kind = :kind AND checksum = :checksum",
            {"org": organization_id, "kind": kind, "checksum": checksum},
        )
        if row is None:
            return None
        return AssembleTask(state=row["state"], detail=row["detail"], date_updated=dt_required(row["date_updated"]))

    async def set(
        self,
        organization_id: int,
        kind: str,
        checksum: str,
        state: str,
        detail: str | None = None,
        request: dict[str, Any] | None = None,
    ) -> None:
        """Record a state, with no lease; `request` (what to assemble) is kept from the first
        call that gave it."""
        await self.db.run(
            "INSERT INTO assemble_tasks (organization_id, kind, checksum, state, detail, request, date_updated)"
            " VALUES (:org, :kind, :checksum, :state, :detail, :request, :now)"
            " ON CONFLICT (organization_id, kind, checksum) DO UPDATE SET state = excluded.state,"
            " detail = excluded.detail, date_updated = excluded.date_updated,"
            " lease_owner = NULL, lease_until = NULL,"
            " request = CASE WHEN excluded.request = '{}' THEN assemble_tasks.request ELSE excluded.request END",
            {
                "org": organization_id,
                "kind": kind,
                "checksum": checksum,
                "state": state,
                "detail": detail,
                "request": to_json(request or {}),
                "now": ts(utcnow()),
            },
        )

    async def unfinished(self, *, unleased_at: str | None = None) -> list[tuple[int, str, str, dict[str, Any]]]:
        """Assemblies accepted but not finished: (org id, kind, checksum, request), oldest first;
        with `unleased_at`, only those nobody holds a lease on at that time."""
        lease = " AND (lease_until IS NULL OR lease_until < :now)" if unleased_at is not None else ""
        rows = await self.db.rows(
            "SELECT organization_id, kind, checksum, request FROM assemble_tasks"
            f" WHERE state IN ('created', 'assembling'){lease} ORDER BY date_updated",
            {"now": unleased_at},
        )
        return [(r["organization_id"], r["kind"], r["checksum"], from_json(r["request"])) for r in rows]

    async def claim(
        self, organization_id: int, kind: str, checksum: str, owner: str, now: str, until: str, *, force: bool = False
    ) -> bool:
        """Take the lease on an unfinished task (`assembling` until `until`): True when it is
        ours, False when it is finished or another owner's lease still runs (unless `force`)."""
        lease = "" if force else " AND (lease_owner IS NULL OR lease_owner = :owner OR lease_until < :now)"
        changed = await self.db.run(
            "UPDATE assemble_tasks SET state = 'assembling', lease_owner = :owner, lease_until = :until,"
            " date_updated = :now"
            " WHERE organization_id = :org AND kind = :kind AND checksum = :checksum"
            f" AND state IN ('created', 'assembling'){lease}",
            {"org": organization_id, "kind": kind, "checksum": checksum, "owner": owner, "now": now, "until": until},
        )
        return changed > 0

    async def renew(self, organization_id: int, kind: str, checksum: str, owner: str, until: str) -> bool:
        """Extend our lease; False when it is no longer ours."""
        changed = await self.db.run(
            "UPDATE assemble_tasks SET lease_until = :until"
            " WHERE organization_id = :org AND kind = :kind AND checksum = :checksum AND lease_owner = :owner",
            {"org": organization_id, "kind": kind, "checksum": checksum, "owner": owner, "until": until},
        )
        return changed > 0

    async def finish(
        self, organization_id: int, kind: str, checksum: str, owner: str, state: str, detail: str | None
    ) -> bool:
        """Record the end state, only while the lease is ours (a worker that lost its lease
        to a takeover must not overwrite the new owner's outcome)."""
        changed = await self.db.run(
            "UPDATE assemble_tasks SET state = :state, detail = :detail, date_updated = :now,"
            " lease_owner = NULL, lease_until = NULL"
            " WHERE organization_id = :org AND kind = :kind AND checksum = :checksum AND lease_owner = :owner",
            {
                "org": organization_id,
                "kind": kind,
                "checksum": checksum,
                "owner": owner,
                "state": state,
                "detail": detail,
                "now": ts(utcnow()),
            },
        )
        return changed > 0
