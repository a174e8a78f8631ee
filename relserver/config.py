"""Runtime configuration: one frozen dataclass, built from flags > RELSERVER_* env > defaults.

Reads no files and touches no disk; `cli.py` builds it, `create_app` consumes it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
DEFAULT_DATA_DIR = Path(".relserver")

# Sentry's chunk-upload advert says maxFileSize 2 GiB (api/endpoints/chunk.py); the
# single-file endpoint has no application limit of its own, but its File.size column is a
# 32-bit signed int, so 2 GiB is the largest file Sentry could ever accept either way.
MAX_FILE_SIZE = 2 * GiB

# Largest text field (`name`, `dist`, one `header`) we buffer. Sentry's own limits are far
# smaller (name: URLs, dist: 64 chars); Django's DATA_UPLOAD_MAX_MEMORY_SIZE is 2.5 MB for
# the whole non-file body. 1 MiB is DESIGN D7.
MAX_FIELD_SIZE = 1 * MiB

# Parts of any kind in one multipart body. Django (and so Sentry) stops at 1000 fields
# (DATA_UPLOAD_MAX_NUMBER_FIELDS); a body of thousands of empty parts is refused early.
MAX_PARTS = 1000

# Bytes handed to the worker thread per hop while streaming a file part (DESIGN invariant 4:
# at least 256 KiB per hop keeps thread switches rare).
WRITE_BATCH_SIZE = 256 * KiB

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the server needs to know; immutable once built."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = DEFAULT_DATA_DIR
    max_file_size: int = MAX_FILE_SIZE
    max_field_size: int = MAX_FIELD_SIZE
    max_parts: int = MAX_PARTS
    write_batch_size: int = WRITE_BATCH_SIZE
    # A token accepted with admin scopes, for CI and scripted set-ups (DESIGN D2).
    token: str | None = None
    # Off only for tests and throwaway mocks: trades durability on power loss for speed.
    fsync: bool = True
    # Organizations and projects appear on first use by a valid token (DESIGN D3).
    auto_create: bool = True
    log_level: str = "info"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "relserver.sqlite3"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin-token"

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with some fields changed; how tests get small limits."""
        return dataclasses.replace(self, **changes)
