"""The repositories, SQL written once per aggregate, and the transaction objects carrying them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ....models import CatalogCheck
from ..dialect import Db
from .archive import ArchiveEntries
from .blobs import BlobRows
from .bundles import BundleMembers, Bundles
from .chunks import AssembleTasks, Chunks
from .commits import Commits
from .files import DuplicateReleaseFile, NewReleaseFile, ReleaseFiles
from .orgs import Organizations, Projects
from .releases import Deploys, ReleaseGone, Releases
from .sessions import UiSessions
from .summaries import Summaries
from .tokens import Tokens

__all__ = ["DuplicateReleaseFile", "NewReleaseFile", "ReadTx", "ReleaseGone", "WriteTx", "check_rows"]

AfterCommit = Callable[[], Awaitable[None]]


class ReadTx:
    """One transaction's view of the catalog: a repository per aggregate."""

    __slots__ = (
        "archive",
        "blobs",
        "bundles",
        "chunks",
        "commits",
        "deploys",
        "files",
        "members",
        "organizations",
        "projects",
        "releases",
        "sessions",
        "summaries",
        "tasks",
        "tokens",
    )

    def __init__(self, db: Db) -> None:
        self.organizations = Organizations(db)
        self.projects = Projects(db)
        self.releases = Releases(db)
        self.deploys = Deploys(db)
        self.commits = Commits(db)
        self.files = ReleaseFiles(db)
        self.archive = ArchiveEntries(db)
        self.bundles = Bundles(db)
        self.members = BundleMembers(db)
        self.chunks = Chunks(db)
        self.tasks = AssembleTasks(db)
        self.tokens = Tokens(db)
        self.blobs = BlobRows(db)
        self.sessions = UiSessions(db)
        self.summaries = Summaries(db)


class WriteTx(ReadTx):
    """A write transaction; `after_commit` callbacks run once it has committed (never after
    a rollback), in the order given."""

    __slots__ = ("_after_commit",)

    def __init__(self, db: Db) -> None:
        super().__init__(db)
        self._after_commit: list[AfterCommit] = []

    def after_commit(self, callback: AfterCommit) -> None:
        self._after_commit.append(callback)

    async def run_after_commit(self) -> None:
        """For the engine: run the callbacks (each one's failure stops the rest, as a raise)."""
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            await callback()


async def check_rows(tx: ReadTx, *, schema_version: int, integrity: str) -> CatalogCheck:
    """What every engine's `check()` reports about the rows: counts, and blob references
    that have no blob row (DESIGN invariant 1)."""
    blob_rows = await tx.blobs.all()
    referenced = await tx.blobs.referenced()
    return CatalogCheck(
        schema_version=schema_version,
        integrity=integrity,
        release_files=await tx.files.count_all(),
        bundle_members=await tx.members.count_all(),
        blob_rows=blob_rows,
        dangling=tuple(sorted(referenced - blob_rows)),
    )
