"""API tokens, stored by hash (DESIGN D2)."""

from __future__ import annotations

from collections.abc import Iterable

from ....models import Token
from ..dialect import Db, Row, columns, dt, dt_required, ts, utcnow

TOKEN_COLUMNS = (
    "id",
    "label",
    "scopes",
    "organization_slug",
    "kind",
    "last_characters",
    "date_created",
    "date_revoked",
)
_TOKEN = f"SELECT {columns('t', TOKEN_COLUMNS)} FROM tokens t"


def token_from(row: Row, prefix: str = "") -> Token:
    return Token(
        id=row[prefix + "id"],
        label=row[prefix + "label"],
        scopes=frozenset(row[prefix + "scopes"].split()),
        organization=row[prefix + "organization_slug"],
        kind=row[prefix + "kind"],
        last_characters=row[prefix + "last_characters"],
        date_created=dt_required(row[prefix + "date_created"]),
        date_revoked=dt(row[prefix + "date_revoked"]),
    )


class Tokens:
    __slots__ = ("db",)

    def __init__(self, db: Db) -> None:
        self.db = db

    async def count(self) -> int:
        row = await self.db.row("SELECT count(*) AS n FROM tokens")
        return int(row["n"]) if row else 0

    async def insert(
        self,
        *,
        token_hash: str,
        label: str,
        scopes: Iterable[str],
        organization: str | None,
        kind: str,
        last_characters: str,
    ) -> Token:
        """Add a token; an existing hash is left as it is (pinned tokens are re-added on start)."""
        params = {
            "hash": token_hash,
            "label": label,
            "scopes": " ".join(sorted(scopes)),
            "org": organization,
            "kind": kind,
            "last": last_characters,
            "now": ts(utcnow()),
        }
        await self.db.run(
            "INSERT INTO tokens (token_hash, label, scopes, organization_slug, kind, last_characters, date_created)"
            " VALUES (:hash, :label, :scopes, :org, :kind, :last, :now) ON CONFLICT DO NOTHING",
            params,
        )
        token = await self.get(token_hash)
        assert token is not None
        return token

    async def get(self, token_hash: str) -> Token | None:
        row = await self.db.row(f"{_TOKEN} WHERE token_hash = :hash", {"hash": token_hash})
        return token_from(row) if row else None

    async def all(self) -> list[Token]:
        return [token_from(r) for r in await self.db.rows(f"{_TOKEN} ORDER BY id")]

    async def revoke(self, token_id: int) -> bool:
        changed = await self.db.run(
            "UPDATE tokens SET date_revoked = :now WHERE id = :id AND date_revoked IS NULL",
            {"now": ts(utcnow()), "id": token_id},
        )
        return changed > 0
