"""Typed keys for application and request state; the one place they are declared."""

from __future__ import annotations

from aiohttp import web

from .config import Config
from .models import Token
from .services.assembly import Assembler
from .services.context import Backend
from .services.scope import PrefetchedScope
from .services.sessions import Session, SignInCodes
from .storage.blobs import BlobStore
from .storage.catalog import Catalog
from .ui.activity import ActivityFeed

config_key = web.AppKey("config", Config)
catalog_key = web.AppKey("catalog", Catalog)
blobstore_key = web.AppKey("blobstore", BlobStore)
# The use cases' view of the app, built once (it owns the group commit of uploads).
backend_key = web.AppKey("backend", Backend)
assembler_key = web.AppKey("assembler", Assembler)

# The authenticated token of the request, set by the auth middleware on API routes.
token_key = web.RequestKey("token", Token)
# On a release's paths, the objects they name, read by the auth middleware with the token.
release_scope_key = web.RequestKey("release_scope", PrefetchedScope)

# The web UI: the API calls this process answered (its live feed), the one-time sign-in codes
# the banner's link carries, and the session a UI request was signed in with.
activity_key = web.AppKey("activity", ActivityFeed)
signin_codes_key = web.AppKey("signin_codes", SignInCodes)
ui_session_key = web.RequestKey("ui_session", Session)
