"""Plain records the store returns and the wire layer serializes. No behaviour, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Organization:
    id: int
    slug: str
    name: str
    date_created: datetime


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    organization_id: int
    slug: str
    name: str
    platform: str | None
    date_created: datetime


@dataclass(frozen=True, slots=True)
class Release:
    id: int
    organization_id: int
    version: str
    status: str
    ref: str | None
    url: str | None
    user_agent: str | None
    date_created: datetime
    date_released: datetime | None
    # Sentry's cached commit columns (set by set_commits, cleared by an empty `refs`).
    commit_count: int = 0
    last_commit_id: int | None = None


@dataclass(frozen=True, slots=True)
class ZipRange:
    """Where a bundle member's bytes lie inside the bundle's own blob (DESIGN D9): the offset of
    its data, its size there, the zip compression method (stored or deflated) and its CRC-32."""

    offset: int
    compressed_size: int
    compression: int
    crc: int


@dataclass(frozen=True, slots=True)
class ReleaseScope:
    """The objects a release's path names: organization, project (on project routes, else
    None), release, and whether the release is linked to that project."""

    organization: Organization
    project: Project | None
    release: Release
    linked: bool


@dataclass(frozen=True, slots=True)
class ReleaseFile:
    """A release file. Its content is `sha1`/`size`; its bytes are the blob `blob_sha1`: its
    own, or, for a file a release bundle brought, that bundle's zip at `zip_range` (D9)."""

    id: int
    release_id: int
    name: str
    dist: str | None
    headers: dict[str, str]
    size: int
    sha1: str
    date_created: datetime
    blob_sha1: str
    zip_range: ZipRange | None = None
    # The blob's object name when it is not `blob_sha1` (a keyed blob store, DESIGN D10).
    blob_key: str | None = None

    @property
    def blob_name(self) -> str:
        return self.blob_key or self.blob_sha1


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    label: str
    scopes: frozenset[str]
    # Slug of the only organization the token may touch; None for unbound tokens.
    organization: str | None
    kind: str  # "user" (sntryu_…) or "org" (sntrys_…)
    last_characters: str
    date_created: datetime
    date_revoked: datetime | None = field(default=None)

    @property
    def revoked(self) -> bool:
        return self.date_revoked is not None


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A file that has been written, hashed and fsync'd into a temp file, not yet committed;
    once in the blob store, `key` is its object's name there when that is not its sha1."""

    sha1: str
    size: int
    # A keyed store's random object name (S3, DESIGN D10); None: the blob is named by its
    # sha1 (the disk engine, and S3 objects written before random keys).
    key: str | None = None

    @property
    def name(self) -> str:
        """What the blob store calls these bytes."""
        return self.key or self.sha1


@dataclass(frozen=True, slots=True)
class AssembleTask:
    """The state of one assembly (Sentry's assemble status, kept in SQLite here)."""

    state: str
    detail: str | None
    date_updated: datetime


@dataclass(frozen=True, slots=True)
class ArtifactBundle:
    id: int
    organization_id: int
    bundle_id: str
    checksum: str
    release: str | None
    dist: str | None
    file_count: int
    date_created: datetime
    date_modified: datetime


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One member of an artifact bundle, as stored. Its content is `sha1`/`size`; its bytes are
    the blob `blob_sha1`: the bundle's zip, at `zip_range`, or (for data dirs from before
    bundles were indexed) a blob of its own, where `zip_range` is None."""

    id: int
    artifact_bundle_id: int
    path: str
    url: str
    file_type: str | None
    headers: dict[str, str]
    debug_id: str | None
    sha1: str
    size: int
    dist: str | None
    date_created: datetime
    blob_sha1: str
    zip_range: ZipRange | None
    # The blob's object name when it is not `blob_sha1` (a keyed blob store, DESIGN D10).
    blob_key: str | None = None

    @property
    def blob_name(self) -> str:
        return self.blob_key or self.blob_sha1


@dataclass(frozen=True, slots=True)
class NewBundleFile:
    """A member read during assembly, not yet committed. `blob` is its content's sha1 and
    size; with a `zip_range` its bytes stay inside the bundle's zip, else they were extracted
    into a temp blob of their own."""

    path: str
    url: str
    file_type: str | None
    headers: dict[str, str]
    debug_id: str | None
    blob: StoredBlob
    zip_range: ZipRange | None = None


@dataclass(frozen=True, slots=True)
class Deploy:
    id: int
    environment: str
    name: str | None
    url: str | None
    date_started: datetime | None
    date_finished: datetime


@dataclass(frozen=True, slots=True)
class SemverColumns:
    """What Sentry's Release row keeps of a `package@semver+build` version (all None when
    the version is not one); `parsed` False only for rows never parsed."""

    package: str | None = None
    major: int | None = None
    minor: int | None = None
    patch: int | None = None
    revision: int | None = None
    prerelease: str | None = None
    build_code: str | None = None
    build_number: int | None = None
    parsed: bool = True


@dataclass(frozen=True, slots=True)
class ReleaseCondition:
    """One condition of a release search, as the catalog applies it.

    kind: "contains" (version contains any of `values`, case-insensitively), "version"
    (`operator` exact | prefix | suffix | infix | in, case-sensitive), "semver" (`operator`
    exact | gt | gte | lt | lte over `parts`, with `package`), "package", "build_number"
    (`operator` over `number`), "build_code" (exact, or prefix when `operator` is "prefix"),
    "finalized" (`flag`), "created" (`operator` over `when`), "nothing" (matches no release).
    `negated` inverts the condition; a release without the value counts as not matching.
    """

    kind: str
    operator: str = "exact"
    values: tuple[str, ...] = ()
    parts: tuple[int | str, ...] = ()
    package: str | None = None
    number: int | None = None
    flag: bool = False
    when: datetime | None = None
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Repository:
    id: int
    organization_id: int
    name: str
    url: str | None
    provider: str | None
    status: str
    date_created: datetime


@dataclass(frozen=True, slots=True)
class CommitAuthor:
    id: int
    name: str | None
    email: str


@dataclass(frozen=True, slots=True)
class ReleaseCommit:
    """A commit as a release lists it: with its repository and author."""

    id: int
    key: str
    message: str | None
    date_created: datetime
    repository: Repository
    author: CommitAuthor | None


@dataclass(frozen=True, slots=True)
class CommitFile:
    """A file a release's commit changed (Sentry's CommitFileChange)."""

    id: int
    organization_id: int
    filename: str
    type: str
    commit_message: str | None
    repository_name: str
    author: CommitAuthor | None


@dataclass(frozen=True, slots=True)
class ReleaseView:
    """A release with what its JSON shows besides its own columns."""

    release: Release
    projects: list[Project]
    deploy_count: int
    last_deploy: Deploy | None
    last_commit: ReleaseCommit | None = None
    authors: tuple[CommitAuthor, ...] = ()


@dataclass(frozen=True, slots=True)
class LookupHit:
    """One answer: an artifact bundle (`kind` "artifact_bundle") or a release file."""

    kind: str
    pk: int
    resolved_with: str
    abs_path: str | None = None
    headers: dict[str, str] | None = None

    @property
    def target(self) -> str:
        """What `?download=` names to fetch it."""
        return f"{self.kind}/{self.pk}"


@dataclass(frozen=True, slots=True)
class UploadedName:
    """A name something was uploaded under in a project, with its release and dist, and
    whether a bundle member (`kind` "artifact_bundle") or a release file carries it."""

    kind: str
    name: str
    release: str | None
    dist: str | None


@dataclass(frozen=True, slots=True)
class CatalogCheck:
    """What `relserver check` reads from the catalog: its own consistency, and its blob rows."""

    schema_version: int
    # SQLite's `PRAGMA integrity_check`: "ok", or what is wrong.
    integrity: str
    release_files: int
    bundle_members: int
    blob_rows: frozenset[str]
    # sha1s that a file, member, bundle or chunk row references but no blob row holds.
    dangling: tuple[str, ...]
