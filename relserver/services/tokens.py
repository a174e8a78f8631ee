"""API tokens: the pinned token and the admin token minted on a first start (DESIGN D2)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from .. import auth
from ..config import Config
from ..models import Token
from ..storage.catalog import Catalog
from .scope import PrefetchedScope

log = logging.getLogger(__name__)


async def bootstrap_tokens(catalog: Catalog, config: Config) -> str | None:
    """Register the pinned token, and mint an admin token on a first start (DESIGN D2).

    Returns the newly minted token (to be shown once), or None.
    """
    async with catalog.write() as tx:
        if config.token:
            await tx.tokens.insert(
                token_hash=auth.hash_token(config.token),
                label="pinned (--token / RELSERVER_TOKEN)",
                scopes=auth.ADMIN_SCOPES,
                organization=None,
                kind=auth.token_kind(config.token),
                last_characters=config.token[-4:],
            )
        if await tx.tokens.count():
            return None
        token = auth.new_user_token()
        await tx.tokens.insert(
            token_hash=auth.hash_token(token),
            label="admin (created on first start)",
            scopes=auth.ADMIN_SCOPES,
            organization=None,
            kind="user",
            last_characters=token[-4:],
        )
    await asyncio.to_thread(write_secret_file, config.admin_token_path, token)
    log.info("created the admin token; it is in %s", config.admin_token_path)
    return token


def write_secret_file(path: Path, content: str) -> None:
    """Write a file only its owner can read (mode 0600 from the start, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content + "\n")
    os.chmod(path, 0o600)


async def token_for(catalog: Catalog, raw: str) -> Token | None:
    """The stored token a bearer token names (found by its hash), revoked or not."""
    async with catalog.read() as tx:
        return await tx.tokens.get(auth.hash_token(raw))


async def token_and_release_scope(
    catalog: Catalog, raw: str, org_ref: str, project_ref: str | None, version: str
) -> tuple[Token | None, PrefetchedScope]:
    """`token_for` and the release scope a release's path names, in one query, for
    `find_release_scope` to use once the token has passed its checks."""
    async with catalog.read() as tx:
        token, found = await tx.releases.scope_with_token(auth.hash_token(raw), org_ref, project_ref, version)
    return token, PrefetchedScope(found)


async def list_tokens(catalog: Catalog, organization: str | None = None) -> list[Token]:
    """Every token (revoked ones too), or only those bound to `organization`."""
    async with catalog.read() as tx:
        tokens = await tx.tokens.all()
    return tokens if organization is None else [t for t in tokens if t.organization == organization]


async def create_token(catalog: Catalog, *, label: str, scopes: frozenset[str], organization: str | None) -> str:
    """A new user token with these scopes; the raw token is returned once and stored hashed."""
    token = auth.new_user_token()
    async with catalog.write() as tx:
        await tx.tokens.insert(
            token_hash=auth.hash_token(token),
            label=label,
            scopes=scopes,
            organization=organization,
            kind=auth.token_kind(token),
            last_characters=token[-4:],
        )
    return token


async def revoke_token(catalog: Catalog, token_id: int) -> bool:
    """Revoke a token and end its web sessions; False when no active token has this id."""
    async with catalog.write() as tx:
        revoked = await tx.tokens.revoke(token_id)
        await tx.sessions.delete_of_token(token_id)
    return revoked
