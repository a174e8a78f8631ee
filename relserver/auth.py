"""Bearer tokens: minting, hashing, parsing the Authorization header, scopes and org binding.

Tokens are stored as sha256 hashes only (DESIGN D2). Messages and scope maps are Sentry's
(api/authentication.py, api/permissions.py, api/bases/organization.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping

from .errors import NotAuthenticated, PermissionDenied
from .models import Token

USER_TOKEN_PREFIX = "sntryu_"
# Org auth tokens: "sntrys_" + base64(JSON payload) + "_" + base64-nopad(32 random bytes);
# sentry-cli reads url/region_url/org from the payload (src/utils/auth_token/org_auth_token.rs).
ORG_TOKEN_PREFIX = "sntrys_"
ORG_TOKEN_SECRET_BYTES = 32

# The scopes Sentry's release endpoints consult, plus the read/write ladder around them.
KNOWN_SCOPES = frozenset(
    {
        "org:read",
        "org:write",
        "org:admin",
        "org:ci",
        "project:read",
        "project:write",
        "project:admin",
        "project:releases",
        "team:read",
        "member:read",
        "event:read",
        "event:write",
        "event:admin",
    }
)
# What the bootstrap and pinned tokens carry: everything relserver checks, except `org:ci`,
# which is the org-token scope.
ADMIN_SCOPES = KNOWN_SCOPES - {"org:ci"}
# Org auth tokens carry exactly this scope in Sentry (models/orgauthtoken.py).
ORG_TOKEN_SCOPES = frozenset({"org:ci"})

# ProjectReleasePermission / OrganizationReleasePermission scope_map (newest api/bases/*.py).
# DELETE deliberately lacks project:write and org:ci.
RELEASE_SCOPES: Mapping[str, frozenset[str]] = {
    "GET": frozenset({"project:read", "project:write", "project:admin", "project:releases", "org:ci"}),
    "POST": frozenset({"project:write", "project:admin", "project:releases", "org:ci"}),
    "PUT": frozenset({"project:write", "project:admin", "project:releases", "org:ci"}),
    "DELETE": frozenset({"project:admin", "project:releases"}),
}

# OrganizationPermission's GET scopes (api/bases/organization.py), plus `org:ci` so that an org
# auth token can look up its own organization as the bundler plugins do before uploading.
ORGANIZATION_READ_SCOPES: Mapping[str, frozenset[str]] = {
    "GET": frozenset({"org:read", "org:write", "org:admin", "org:ci"}),
}

# Sentry's authentication failure messages (api/authentication.py; DRF for the first).
NOT_PROVIDED = "Authentication credentials were not provided."
NO_CREDENTIALS = "Invalid token header. No credentials provided."
HAS_SPACES = "Invalid token header. Token string should not contain spaces."
INVALID_TOKEN = "Invalid token"
# DRF's TokenAuthentication words a token whose bytes are not UTF-8 so; Sentry's own
# authenticator would fail decoding it with a 500.
INVALID_CHARACTERS = "Invalid token header. Token string should not contain invalid characters."
INVALID_ORG_TOKEN = "Invalid org token"

# Every 401 carries this; `xBasic` keeps browsers from popping a login box (api/authentication.py).
WWW_AUTHENTICATE = 'xBasic realm="api"'


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_user_token() -> str:
    return USER_TOKEN_PREFIX + secrets.token_hex(32)


def new_org_token(*, url: str, org: str) -> str:
    payload = {"iat": time.time(), "url": url, "region_url": url, "org": org}
    encoded = base64.b64encode(json.dumps(payload).encode("utf-8")).decode("ascii")
    secret = base64.b64encode(secrets.token_bytes(ORG_TOKEN_SECRET_BYTES)).decode("ascii").rstrip("=")
    return f"{ORG_TOKEN_PREFIX}{encoded}_{secret}"


def token_kind(token: str) -> str:
    return "org" if token.startswith(ORG_TOKEN_PREFIX) else "user"


def bearer_token(authorization: str | None) -> str | None:
    """The token from an Authorization header, None when no usable credentials were sent.

    Raises Sentry's 401s for a `Bearer` header with no token or a token with spaces. Any
    other scheme counts as no credentials, as it does in Sentry.
    """
    if not authorization:
        return None
    parts = authorization.split()
    if not parts or parts[0].lower() != "bearer":
        return None
    if len(parts) == 1:
        raise NotAuthenticated(NO_CREDENTIALS)
    if len(parts) > 2:
        raise NotAuthenticated(HAS_SPACES)
    return parts[1]


def invalid_token_error(token: str) -> NotAuthenticated:
    """User tokens and org tokens fail with different messages (api/authentication.py)."""
    return NotAuthenticated(INVALID_ORG_TOKEN if token_kind(token) == "org" else INVALID_TOKEN)


def check_scopes(token: Token, method: str, scope_map: Mapping[str, frozenset[str]]) -> None:
    """The token needs one of the scopes listed for the method (DRF ScopedPermission)."""
    method = method.upper()
    # HEAD is a GET without the body; it needs what GET needs.
    allowed = scope_map.get("GET" if method == "HEAD" else method, frozenset())
    if not token.scopes & allowed:
        raise PermissionDenied()


def check_organization(token: Token, slug: str) -> None:
    """A token bound to an organization touches only that one."""
    if token.organization is not None and token.organization != slug:
        raise PermissionDenied()


# Downloading file contents is a separate check (debug_files.py has_download_permission).
# Project endpoints: org auth tokens never may; users need a role of at least
# `sentry:debug_files_role` (admin) — relserver has no roles, so a user token that may write
# release files stands in for it. Organization endpoints: the access must hold exactly
# `project:write` (organization_release_file_details.py).
PROJECT_DOWNLOAD_SCOPES = frozenset({"project:write", "project:admin", "project:releases"})
ORG_DOWNLOAD_SCOPES = frozenset({"project:write"})


def may_download(token: Token, *, organization_scope: bool) -> bool:
    if organization_scope:
        return bool(token.scopes & ORG_DOWNLOAD_SCOPES)
    return token.kind == "user" and bool(token.scopes & PROJECT_DOWNLOAD_SCOPES)
