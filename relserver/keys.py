"""Typed keys for application and request state; the one place they are declared."""

from __future__ import annotations

from aiohttp import web

from .config import Config
from .models import Token
from .services.assembly import Assembler
from .storage.blobs import BlobStore
from .storage.sqlite import Store

config_key = web.AppKey("config", Config)
store_key = web.AppKey("store", Store)
blobstore_key = web.AppKey("blobstore", BlobStore)
assembler_key = web.AppKey("assembler", Assembler)

# The authenticated token of the request, set by the auth middleware on API routes.
token_key = web.RequestKey("token", Token)
