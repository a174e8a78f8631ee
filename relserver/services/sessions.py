"""Web UI sign-ins (DESIGN D11): a token becomes a server-side session.

The session secret goes to the browser once, in a cookie; the catalog keeps only its sha256,
as it does for tokens. A session is the token it was opened with: revoking the token ends
it, and it never carries more than the token's scopes. It ends after `ui_session_idle_seconds`
without use or `ui_session_max_age_seconds` after sign-in, whichever comes first.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .. import auth
from ..config import UI_SESSION_TOUCH_SECONDS, UI_SIGNIN_CODE_SECONDS
from ..models import Token
from ..storage.sql.dialect import utcnow
from .context import Backend

# Bytes of randomness in a session secret and a sign-in code (256 bits, as a token's).
SESSION_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class Session:
    token: Token
    date_created: datetime
    expires: datetime


async def sign_in(backend: Backend, raw_token: str) -> tuple[str, Session] | None:
    """A new session for a valid, unrevoked token; its secret (for the cookie) and the session.
    None for anything else, with no hint which part was wrong."""
    token = await _active_token(backend, raw_token)
    if token is None:
        return None
    return await open_session(backend, token)


async def open_session(backend: Backend, token: Token) -> tuple[str, Session]:
    secret = secrets.token_urlsafe(SESSION_SECRET_BYTES)
    now = utcnow()
    config = backend.config
    async with backend.catalog.write() as tx:
        # Expired sessions go whenever a new one is made, so the table stays small.
        await tx.sessions.delete_expired(
            created_before=now - timedelta(seconds=config.ui_session_max_age_seconds),
            seen_before=now - timedelta(seconds=config.ui_session_idle_seconds),
        )
        await tx.sessions.create(auth.hash_token(secret), token.id, now)
    return secret, Session(token=token, date_created=now, expires=_expires(backend, now, now))


async def session_for(backend: Backend, secret: str) -> Session | None:
    """The live session a cookie names; None when unknown, expired or its token revoked."""
    if not secret:
        return None
    session_hash = auth.hash_token(secret)
    async with backend.catalog.read() as tx:
        stored = await tx.sessions.get(session_hash)
    if stored is None:
        return None
    now = utcnow()
    expires = _expires(backend, stored.date_created, stored.date_last_seen)
    if stored.token.revoked or now >= expires:
        async with backend.catalog.write() as wtx:
            await wtx.sessions.delete(session_hash)
        return None
    # Written at most every UI_SESSION_TOUCH_SECONDS, and well within a short idle limit.
    touch_after = min(UI_SESSION_TOUCH_SECONDS, backend.config.ui_session_idle_seconds / 4)
    if now - stored.date_last_seen >= timedelta(seconds=touch_after):
        async with backend.catalog.write() as wtx:
            await wtx.sessions.touch(stored.id, now)
        expires = _expires(backend, stored.date_created, now)
    return Session(token=stored.token, date_created=stored.date_created, expires=expires)


async def sign_out(backend: Backend, secret: str) -> None:
    async with backend.catalog.write() as tx:
        await tx.sessions.delete(auth.hash_token(secret))


def _expires(backend: Backend, created: datetime, last_seen: datetime) -> datetime:
    config = backend.config
    return min(
        created + timedelta(seconds=config.ui_session_max_age_seconds),
        last_seen + timedelta(seconds=config.ui_session_idle_seconds),
    )


async def _active_token(backend: Backend, raw_token: str) -> Token | None:
    raw_token = raw_token.strip()
    if not raw_token or any(c.isspace() for c in raw_token):
        return None
    async with backend.catalog.read() as tx:
        token = await tx.tokens.get(auth.hash_token(raw_token))
    return token if token is not None and not token.revoked else None


@dataclass(slots=True)
class SignInCodes:
    """One-time sign-in codes for the link `serve` prints (the local-mock case): each names a
    token by its hash, works once, and only within `UI_SIGNIN_CODE_SECONDS`. Kept in this
    process's memory: the link is for the process that printed it."""

    _codes: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    def issue(self, raw_token: str) -> str:
        code = secrets.token_urlsafe(SESSION_SECRET_BYTES)
        expires = utcnow() + timedelta(seconds=UI_SIGNIN_CODE_SECONDS)
        self._codes[auth.hash_token(code)] = (auth.hash_token(raw_token), expires)
        return code

    async def redeem(self, backend: Backend, code: str) -> tuple[str, Session] | None:
        found = self._codes.pop(auth.hash_token(code), None)
        if found is None or utcnow() >= found[1]:
            return None
        async with backend.catalog.read() as tx:
            token = await tx.tokens.get(found[0])
        if token is None or token.revoked:
            return None
        return await open_session(backend, token)
