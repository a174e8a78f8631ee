"""Web UI sessions (DESIGN D11), stored by hash and tied to the token they were opened with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ....models import Token
from ..dialect import Db, dt_required, ts
from .tokens import token_from

_SESSION = (
    "SELECT s.id AS session_id, s.date_created AS session_created, s.date_last_seen AS session_seen,"
    " t.id, t.label, t.scopes, t.organization_slug, t.kind, t.last_characters, t.date_created, t.date_revoked"
    " FROM ui_sessions s JOIN tokens t ON t.id = s.token_id"
)


@dataclass(frozen=True, slots=True)
class StoredSession:
    id: int
    token: Token
    date_created: datetime
    date_last_seen: datetime


class UiSessions:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    async def create(self, session_hash: str, token_id: int, now: datetime) -> None:
        await self.db.run(
            "INSERT INTO ui_sessions (session_hash, token_id, date_created, date_last_seen)"
            " VALUES (:hash, :token, :now, :now)",
            {"hash": session_hash, "token": token_id, "now": ts(now)},
        )

    async def get(self, session_hash: str) -> StoredSession | None:
        """The session and its token (revoked or not: the caller decides)."""
        row = await self.db.row(f"{_SESSION} WHERE s.session_hash = :hash", {"hash": session_hash})
        if row is None:
            return None
        return StoredSession(
            id=row["session_id"],
            token=token_from(row),
            date_created=dt_required(row["session_created"]),
            date_last_seen=dt_required(row["session_seen"]),
        )

    async def touch(self, session_id: int, now: datetime) -> None:
        await self.db.run(
            "UPDATE ui_sessions SET date_last_seen = :now WHERE id = :id", {"now": ts(now), "id": session_id}
        )

    async def delete(self, session_hash: str) -> bool:
        return await self.db.run("DELETE FROM ui_sessions WHERE session_hash = :hash", {"hash": session_hash}) > 0

    async def delete_expired(self, *, created_before: datetime, seen_before: datetime) -> int:
        """Sessions past their absolute or idle expiry (ISO text compares as time)."""
        return await self.db.run(
            "DELETE FROM ui_sessions WHERE date_created < :created OR date_last_seen < :seen",
            {"created": ts(created_before), "seen": ts(seen_before)},
        )

    async def delete_of_token(self, token_id: int) -> int:
        return await self.db.run("DELETE FROM ui_sessions WHERE token_id = :token", {"token": token_id})

    async def count(self, token_id: int) -> int:
        row = await self.db.row("SELECT count(*) AS n FROM ui_sessions WHERE token_id = :token", {"token": token_id})
        return int(row["n"]) if row else 0
