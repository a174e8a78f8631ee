"""The SQLite engine's schema: each entry of MIGRATIONS is one migration, and PRAGMA
user_version records how many have run."""

from __future__ import annotations

# Each entry is one migration; PRAGMA user_version records how many have run.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE organizations (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        date_created TEXT NOT NULL
    );
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        slug TEXT NOT NULL,
        name TEXT NOT NULL,
        platform TEXT,
        date_created TEXT NOT NULL,
        UNIQUE (organization_id, slug)
    );
    CREATE TABLE releases (
        id INTEGER PRIMARY KEY,
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        version TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        ref TEXT,
        url TEXT,
        user_agent TEXT,
        date_created TEXT NOT NULL,
        date_released TEXT,
        UNIQUE (organization_id, version)
    );
    CREATE TABLE release_projects (
        release_id INTEGER NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        PRIMARY KEY (release_id, project_id)
    );
    CREATE INDEX release_projects_by_project ON release_projects (project_id);
    CREATE INDEX releases_by_date ON releases (organization_id, date_created, id);
    CREATE TABLE dists (
        id INTEGER PRIMARY KEY,
        release_id INTEGER NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        date_created TEXT NOT NULL,
        UNIQUE (release_id, name)
    );
    CREATE TABLE blobs (
        sha1 TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        date_created TEXT NOT NULL
    );
    -- Sentry's ReleaseFile: unique per (release, ident), ident = sha1(name [+ \\0\\0 + dist]).
    CREATE TABLE release_files (
        id INTEGER PRIMARY KEY,
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        release_id INTEGER NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
        dist_id INTEGER REFERENCES dists(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        -- casefold(name), for Sentry's case-insensitive `query` filter without a Python UDF.
        name_folded TEXT NOT NULL,
        ident TEXT NOT NULL,
        blob_sha1 TEXT NOT NULL REFERENCES blobs(sha1),
        headers TEXT NOT NULL,
        date_created TEXT NOT NULL,
        UNIQUE (release_id, ident)
    );
    -- Covers the list's ORDER BY so a deep OFFSET skips index entries, not rows.
    CREATE INDEX release_files_by_name ON release_files (release_id, name, id);
    CREATE INDEX release_files_by_blob ON release_files (blob_sha1);
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL,
        scopes TEXT NOT NULL,
        organization_slug TEXT,
        kind TEXT NOT NULL,
        last_characters TEXT NOT NULL,
        date_created TEXT NOT NULL,
        date_revoked TEXT
    );
    """,
    """
    -- Chunks (blobs) an organization uploaded: an org can only assemble its own (chunk.py).
    CREATE TABLE chunk_owners (
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        sha1 TEXT NOT NULL REFERENCES blobs(sha1),
        date_created TEXT NOT NULL,
        PRIMARY KEY (organization_id, sha1)
    );
    CREATE INDEX chunk_owners_by_sha1 ON chunk_owners (sha1);
    -- Assembly states, persisted so polling works across a restart (Sentry keeps them in a cache).
    CREATE TABLE assemble_tasks (
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        checksum TEXT NOT NULL,
        state TEXT NOT NULL,
        detail TEXT,
        request TEXT NOT NULL,
        date_updated TEXT NOT NULL,
        PRIMARY KEY (organization_id, kind, checksum)
    );
    CREATE TABLE artifact_bundles (
        id INTEGER PRIMARY KEY,
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        bundle_id TEXT NOT NULL,
        checksum TEXT NOT NULL,
        release TEXT,
        dist TEXT,
        file_count INTEGER NOT NULL,
        date_created TEXT NOT NULL,
        date_modified TEXT NOT NULL,
        UNIQUE (organization_id, bundle_id)
    );
    CREATE INDEX artifact_bundles_by_release ON artifact_bundles (organization_id, release, dist);
    CREATE INDEX artifact_bundles_by_checksum ON artifact_bundles (organization_id, checksum);
    CREATE TABLE artifact_bundle_projects (
        artifact_bundle_id INTEGER NOT NULL REFERENCES artifact_bundles(id) ON DELETE CASCADE,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        PRIMARY KEY (artifact_bundle_id, project_id)
    );
    CREATE INDEX artifact_bundle_projects_by_project ON artifact_bundle_projects (project_id);
    -- One member of a bundle; its bytes are a blob of their own, so downloads need no unzip.
    CREATE TABLE artifact_bundle_files (
        id INTEGER PRIMARY KEY,
        artifact_bundle_id INTEGER NOT NULL REFERENCES artifact_bundles(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        url TEXT NOT NULL,
        url_folded TEXT NOT NULL,
        file_type TEXT,
        headers TEXT NOT NULL,
        debug_id TEXT,
        blob_sha1 TEXT NOT NULL REFERENCES blobs(sha1),
        UNIQUE (artifact_bundle_id, path)
    );
    CREATE INDEX artifact_bundle_files_by_url ON artifact_bundle_files (artifact_bundle_id, url);
    CREATE INDEX artifact_bundle_files_by_debug_id ON artifact_bundle_files (debug_id);
    CREATE INDEX artifact_bundle_files_by_blob ON artifact_bundle_files (blob_sha1);
    CREATE TABLE deploys (
        id INTEGER PRIMARY KEY,
        release_id INTEGER NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
        environment TEXT NOT NULL,
        name TEXT,
        url TEXT,
        date_started TEXT,
        date_finished TEXT NOT NULL
    );
    """,
    """
    -- Substring search over names (the list's `query`) from a trigram index instead of a scan.
    CREATE VIRTUAL TABLE release_files_fts USING fts5(
        name_folded, content='release_files', content_rowid='id', tokenize='trigram'
    );
    CREATE TRIGGER release_files_fts_insert AFTER INSERT ON release_files BEGIN
        INSERT INTO release_files_fts (rowid, name_folded) VALUES (new.id, new.name_folded);
    END;
    CREATE TRIGGER release_files_fts_delete AFTER DELETE ON release_files BEGIN
        INSERT INTO release_files_fts (release_files_fts, rowid, name_folded)
        VALUES ('delete', old.id, old.name_folded);
    END;
    CREATE TRIGGER release_files_fts_rename AFTER UPDATE OF name_folded ON release_files BEGIN
        INSERT INTO release_files_fts (release_files_fts, rowid, name_folded)
        VALUES ('delete', old.id, old.name_folded);
        INSERT INTO release_files_fts (rowid, name_folded) VALUES (new.id, new.name_folded);
    END;
    INSERT INTO release_files_fts (release_files_fts) VALUES ('rebuild');
    """,
    """
    -- Bundles stored whole and indexed (DESIGN D9): a member's content identity (sha1, size)
    -- is its own; its bytes are the blob `blob_sha1`, which is now the bundle's zip, read at
    -- data_offset (compressed_size bytes, zip method `compression`, CRC-32 `crc`). Members of
    -- older data dirs keep a blob of their own and no offset.
    ALTER TABLE artifact_bundle_files ADD COLUMN sha1 TEXT;
    ALTER TABLE artifact_bundle_files ADD COLUMN size INTEGER;
    ALTER TABLE artifact_bundle_files ADD COLUMN data_offset INTEGER;
    ALTER TABLE artifact_bundle_files ADD COLUMN compressed_size INTEGER;
    ALTER TABLE artifact_bundle_files ADD COLUMN compression INTEGER;
    ALTER TABLE artifact_bundle_files ADD COLUMN crc INTEGER;
    UPDATE artifact_bundle_files
    SET sha1 = blob_sha1, size = (SELECT size FROM blobs WHERE blobs.sha1 = artifact_bundle_files.blob_sha1);
    """,
    """
    -- Release bundles stored whole too (DESIGN D9): a release file's content identity is its
    -- own (sha1, size); its bytes are `blob_sha1`, its own blob or its bundle's zip at
    -- data_offset. Files of older data dirs have their own blob and no offset.
    ALTER TABLE release_files ADD COLUMN sha1 TEXT;
    ALTER TABLE release_files ADD COLUMN size INTEGER;
    ALTER TABLE release_files ADD COLUMN data_offset INTEGER;
    ALTER TABLE release_files ADD COLUMN compressed_size INTEGER;
    ALTER TABLE release_files ADD COLUMN compression INTEGER;
    ALTER TABLE release_files ADD COLUMN crc INTEGER;
    UPDATE release_files
    SET sha1 = blob_sha1, size = (SELECT size FROM blobs WHERE blobs.sha1 = release_files.blob_sha1);
    -- The list's `checksum` filter.
    CREATE INDEX release_files_by_sha1 ON release_files (release_id, sha1);
    """,
    """
    -- Assembly leases (DESIGN D10): the process working on a task says so until lease_until;
    -- any process may take over a task whose lease ran out (its worker died).
    ALTER TABLE assemble_tasks ADD COLUMN lease_owner TEXT;
    ALTER TABLE assemble_tasks ADD COLUMN lease_until TEXT;
    """,
    """
    -- Commits as Sentry keeps them (models/repository.py, commit.py, commitauthor.py,
    -- commitfilechange.py, releasecommit.py, releaseheadcommit.py). A repository is created
    -- on first mention by a release's commits (releases/set_commits.py), one per name.
    CREATE TABLE repositories (
        id INTEGER PRIMARY KEY,
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        url TEXT,
        provider TEXT,
        status TEXT NOT NULL DEFAULT 'active',
        date_created TEXT NOT NULL,
        UNIQUE (organization_id, name)
    );
    CREATE TABLE commit_authors (
        id INTEGER PRIMARY KEY,
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        name TEXT,
        email TEXT NOT NULL,
        UNIQUE (organization_id, email)
    );
    CREATE TABLE commits (
        id INTEGER PRIMARY KEY,
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        message TEXT,
        author_id INTEGER REFERENCES commit_authors(id) ON DELETE SET NULL,
        date_created TEXT NOT NULL,
        UNIQUE (repository_id, key)
    );
    CREATE TABLE commit_file_changes (
        id INTEGER PRIMARY KEY,
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        commit_id INTEGER NOT NULL REFERENCES commits(id) ON DELETE CASCADE,
        filename TEXT NOT NULL,
        type TEXT NOT NULL,
        UNIQUE (commit_id, filename)
    );
    CREATE TABLE release_commits (
        release_id INTEGER NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
        commit_id INTEGER NOT NULL REFERENCES commits(id) ON DELETE CASCADE,
        ord INTEGER NOT NULL,
        PRIMARY KEY (release_id, commit_id)
    );
    CREATE INDEX release_commits_by_order ON release_commits (release_id, ord);
    CREATE INDEX release_commits_by_commit ON release_commits (commit_id);
    CREATE TABLE release_head_commits (
        release_id INTEGER NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
        repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
        commit_id INTEGER NOT NULL REFERENCES commits(id) ON DELETE CASCADE,
        PRIMARY KEY (release_id, repository_id)
    );
    -- What Sentry's Release row caches: commit_count and last_commit_id (set by set_commits),
    -- and the semver columns its manager fills from package@version+build, which
    -- sort=semver|build and the release.version/package/build searches use.
    -- semver_parsed = 0 marks rows of older data dirs that start-up parses once.
    ALTER TABLE releases ADD COLUMN commit_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE releases ADD COLUMN last_commit_id INTEGER REFERENCES commits(id) ON DELETE SET NULL;
    ALTER TABLE releases ADD COLUMN package TEXT;
    ALTER TABLE releases ADD COLUMN major BIGINT;
    ALTER TABLE releases ADD COLUMN minor BIGINT;
    ALTER TABLE releases ADD COLUMN patch BIGINT;
    ALTER TABLE releases ADD COLUMN revision BIGINT;
    ALTER TABLE releases ADD COLUMN prerelease TEXT;
    ALTER TABLE releases ADD COLUMN build_code TEXT;
    ALTER TABLE releases ADD COLUMN build_number BIGINT;
    ALTER TABLE releases ADD COLUMN semver_parsed INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX deploys_by_release ON deploys (release_id, date_finished);
    """,
    """
    -- Blob references on shared engines (DESIGN D10): a blob's object name in a keyed store
    -- (random; NULL: named by its sha1, the disk engine's way), when its last reference went
    -- (a collector deletes it once a grace period has passed and nothing references it again),
    -- and when each periodic maintenance job may run next (one process claims each run).
    ALTER TABLE blobs ADD COLUMN object_key TEXT;
    ALTER TABLE blobs ADD COLUMN unreferenced_at TEXT;
    CREATE UNIQUE INDEX blobs_by_object_key ON blobs (object_key);
    CREATE INDEX blobs_by_unreferenced_at ON blobs (unreferenced_at);
    CREATE TABLE maintenance_runs (
        job TEXT PRIMARY KEY,
        next_run TEXT NOT NULL
    );
    """,
    """
    -- Web UI sign-ins (DESIGN D11): a session is stored as the sha256 of its secret, like a
    -- token, and belongs to the token it was opened with (deleting the token deletes it; a
    -- revoked token's sessions are refused on read).
    CREATE TABLE ui_sessions (
        id INTEGER PRIMARY KEY,
        session_hash TEXT NOT NULL UNIQUE,
        token_id INTEGER NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
        date_created TEXT NOT NULL,
        date_last_seen TEXT NOT NULL
    );
    CREATE INDEX ui_sessions_by_token ON ui_sessions (token_id);
    """,
)
