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

# Chunk upload, as Sentry advertises it (api/endpoints/chunk.py). The chunk size must stay a
# power of two: sentry-cli <= 2.39.1 refuses anything else.
CHUNK_SIZE = 8 * MiB
CHUNKS_PER_REQUEST = 64
MAX_REQUEST_SIZE = 32 * MiB
CHUNK_UPLOAD_CONCURRENCY = 8

# Bundles are untrusted zips. Sentry bounds only the assembled file (maxFileSize); these caps
# bound what reading one may cost. A large real build, 20 000 modules with their maps, is
# 40 000 members in one bundle (sentry-cli sends one bundle per upload), so the member cap
# leaves room for five of those; each member costs one catalog row, no file (DESIGN D9).
MAX_BUNDLE_MEMBERS = 200_000
MAX_BUNDLE_MEMBER_SIZE = 256 * MiB
MAX_BUNDLE_EXPANDED_SIZE = 4 * GiB
# Deflate tops out near 1032:1; honest source maps compress about 4-10:1.
MAX_BUNDLE_COMPRESSION_RATIO = 200

# Resolve keeps built SourceMapCaches in memory, charged the bytes of the minified file and
# map each was built from (a built cache takes less, docs/benchmarks.md). Ours: 256 MiB holds
# the caches of a dozen 15 MB maps, about what one release of a large app has.
RESOLVE_CACHE_SIZE = 256 * MiB

# How the chunk-upload endpoint presents itself, which decides sentry-cli 2.x's upload path.
UPLOAD_MODES = ("artifact-bundles", "release-bundles", "legacy")

LOG_LEVELS = ("debug", "info", "warning", "error")

# Shared engines (DESIGN D10). How long a blob stays after its last reference went before the
# collector deletes it, and how old an object no row names must be before it counts as a
# crash's leftover. It lets a download that read a row just before a delete finish, and it
# must exceed the longest time between an upload's object write and its row's commit: S3
# dates a multipart object from the upload's start, so that is the whole upload (a 2 GiB file
# at 10 MiB/s: under 4 minutes). Sentry deletes unused file blobs only once they are a day
# old; an hour holds the bytes far past any request here without letting a busy bucket grow
# for a day.
BLOB_GRACE_SECONDS = 3600.0
# Below this the leftover sweep could take an upload's object before its row commits: the
# 2 GiB upload above, with room to spare.
MIN_BLOB_GRACE_SECONDS = 600.0
# How long an assembly's lease lasts without renewal; a process killed mid-assembly hands its
# task to another after this. sentry-cli's `--wait` polls for minutes, so 30 s costs little;
# it must stay well above a renewal round trip (renewed every third of it).
ASSEMBLE_LEASE_SECONDS = 30.0
# How long a presigned download URL (--blob-redirect) stays valid: long enough for a client to
# follow the redirect and a slow download to start, short enough that a leaked URL soon dies.
BLOB_REDIRECT_SECONDS = 300.0
# Web UI sessions (DESIGN D11). A sign-in lasts a working day without use and a week at
# most, the lifetimes Django's admin and Datasette users live with; both are settings.
UI_SESSION_IDLE_SECONDS = 12 * 3600
UI_SESSION_MAX_AGE_SECONDS = 7 * 24 * 3600
# A session's last use is written at most this often, so browsing is not a write per page.
UI_SESSION_TOUCH_SECONDS = 60
# The one-time sign-in link the banner prints is good for this long after start.
UI_SIGNIN_CODE_SECONDS = 15 * 60
# API calls the overview's activity feed keeps, per process (an in-memory ring): a full
# sentry-cli upload of a large build is a few dozen calls, so this holds several.
UI_ACTIVITY_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the server needs to know; immutable once built."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = DEFAULT_DATA_DIR
    # The catalog's PostgreSQL database; None keeps it in the data dir's SQLite file.
    database_url: str | None = None
    # The blob store's S3 bucket and prefix (s3://bucket/prefix); None keeps blobs in the data
    # dir. Endpoint, region and credentials come from the AWS_* environment variables.
    blob_url: str | None = None
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
    # What the chunk-upload GET advertises (DESIGN D5); "legacy" answers it with a 404.
    upload_mode: str = "artifact-bundles"
    # The origin clients should send chunks to; None means the origin of each request.
    public_url: str | None = None
    # Believe X-Forwarded-Proto/-Host (only behind a proxy you run).
    trust_proxy: bool = False
    chunk_size: int = CHUNK_SIZE
    chunks_per_request: int = CHUNKS_PER_REQUEST
    max_request_size: int = MAX_REQUEST_SIZE
    max_bundle_members: int = MAX_BUNDLE_MEMBERS
    max_bundle_member_size: int = MAX_BUNDLE_MEMBER_SIZE
    max_bundle_expanded_size: int = MAX_BUNDLE_EXPANDED_SIZE
    max_bundle_compression_ratio: int = MAX_BUNDLE_COMPRESSION_RATIO
    blob_grace_seconds: float = BLOB_GRACE_SECONDS
    # Answer downloads of whole blobs with a redirect to a presigned S3 URL (BLOB_REDIRECT_SECONDS)
    # instead of proxying the bytes; off by default, as Sentry proxies.
    blob_redirect: bool = False
    assemble_lease_seconds: float = ASSEMBLE_LEASE_SECONDS
    ui_session_idle_seconds: float = UI_SESSION_IDLE_SECONDS
    ui_session_max_age_seconds: float = UI_SESSION_MAX_AGE_SECONDS
    ui_activity_limit: int = UI_ACTIVITY_LIMIT
    resolve_cache_size: int = RESOLVE_CACHE_SIZE

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
