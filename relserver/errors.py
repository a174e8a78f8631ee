"""Domain errors, each carrying the exact Sentry body it renders as.

    APIError(status, body)          rendered by the error middleware as JSON
    ├── BadRequest      400  {"detail": …} or DRF field errors {"field": ["…"]}
    ├── NotAuthenticated 401 {"detail": …} + WWW-Authenticate: xBasic realm="api"
    ├── PermissionDenied 403 {"detail": "You do not have permission to perform this action."}
    ├── NotFound        404  {"detail": "The requested resource does not exist"}
    ├── Conflict        409  {"detail": …}
    ├── PayloadTooLarge 413  {"detail": …} naming the limit (relserver's own; Sentry sets none)
    ├── UnsupportedMediaType 415
    ├── ClientClosedRequest 400  the body stopped short: the client hung up (nobody reads it)
    ├── InsufficientStorage 507  the disk (or SQLite's file) is full; clients retry 507
    └── BlobStoreDown   503  the object store failed at run time (bucket gone, credentials
                             revoked, endpoint down); nothing was stored

Modules below the API raise these (or the plain `Conflict`/`NotFound`) and never build HTTP
responses themselves; the middleware in `api/middleware.py` is the one place that renders.
"""

from __future__ import annotations

import errno
from typing import Any

# Sentry's ResourceDoesNotExist message (api/exceptions.py).
RESOURCE_DOES_NOT_EXIST = "The requested resource does not exist"
# DRF's PermissionDenied default message, which Sentry leaves as is.
PERMISSION_DENIED = "You do not have permission to perform this action."


class APIError(Exception):
    """An error with a status code and the JSON body Sentry would send."""

    status = 500

    def __init__(self, body: dict[str, Any] | str | None = None, *, status: int | None = None) -> None:
        if isinstance(body, str):
            body = {"detail": body}
        self.body: dict[str, Any] | None = body
        if status is not None:
            self.status = status
        super().__init__(str(body))


class BadRequest(APIError):
    status = 400


class NotAuthenticated(APIError):
    status = 401


class PermissionDenied(APIError):
    status = 403

    def __init__(self, body: dict[str, Any] | str | None = PERMISSION_DENIED) -> None:
        super().__init__(body)


class NotFound(APIError):
    status = 404

    def __init__(self, body: dict[str, Any] | str | None = RESOURCE_DOES_NOT_EXIST) -> None:
        super().__init__(body)


class Conflict(APIError):
    status = 409


class PayloadTooLarge(APIError):
    status = 413


class UnsupportedMediaType(APIError):
    status = 415

    def __init__(self, media_type: str) -> None:
        # DRF's UnsupportedMediaType message, which Sentry passes through.
        super().__init__(f'Unsupported media type "{media_type}" in request.')


class ClientClosedRequest(APIError):
    """The client hung up before its request body was complete; nobody reads this answer, but the
    access log shows a 4xx rather than a 500 (nginx would log its 499)."""

    status = 400

    def __init__(self) -> None:
        super().__init__("The client closed the connection before the request body was complete")


class InsufficientStorage(APIError):
    status = 507

    def __init__(self) -> None:
        super().__init__("Insufficient storage: the server's disk is full; nothing was stored, try again later")


BLOB_STORE_UNAVAILABLE = "the blob store is unavailable; nothing was stored, try again later"


class BlobStoreDown(APIError):
    status = 503

    def __init__(self) -> None:
        super().__init__(BLOB_STORE_UNAVAILABLE[0].upper() + BLOB_STORE_UNAVAILABLE[1:])


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT from a write (the catalog's engines report a full database this way too)."""
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS
