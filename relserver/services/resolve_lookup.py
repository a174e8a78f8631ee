"""Resolve's per-request lookup, as symbolicator keeps it per event (symbolicator-js
`lookup.rs`): the bundles and release files the artifact lookup returned so far, files found
by debug id or candidate name, and their bytes, each worked out once per request."""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass

from ..config import MiB
from ..models import Organization, Project, UploadedName, ZipRange
from ..sentry import sourcemaps as sm
from ..storage.blobs import BlobStore
from .context import Backend
from .lookup import artifact_lookup
from .resolve_hints import utf16_length
from .resolve_report import Artifact, FrameResult, Hint, Step

# Our bound on one minified file, map or original read into memory for resolve; symbolicator
# bounds what a request retains too (its sources budget in lookup.rs). 15 MB maps are common.
MAX_RESOLVE_FILE_SIZE = 256 * MiB
# How many uploaded names a hint looks through, per kind of upload.
MAX_HINT_NAMES = 50


@dataclass(slots=True)
class File:
    """A file found for a frame: where it came from and where its bytes are (read on demand:
    a cached map is never read again)."""

    artifact: Artifact
    resolved_with: str
    sha1: str
    headers: dict[str, str]
    size: int
    blob_name: str = ""
    zip_range: ZipRange | None = None
    # The bytes, once read (or given: an embedded map).
    data: bytes | None = None


@dataclass(slots=True)
class Minified:
    """What a frame needs of a minified file's text, worked out once and kept with its built
    cache: each line's length in UTF-16 units (for the past-the-end hint), the map reference."""

    line_lengths: list[int]
    reference: str | None
    origin: str
    ignored_comments: list[str]
    # A release file's `//# debugId=` comment (lookup.rs try_fetch_file_from_artifacts); a
    # bundle member's own is not read (CachedFile::from_descriptor).
    debug_id: str | None


def _read_minified(data: bytes, headers: dict[str, str], kind: str) -> Minified:
    """Blocking: what resolve keeps of a minified file (its map reference, line lengths in
    UTF-16 units, ignored comments, a release file's own debug id)."""
    text = data.decode("utf-8", "replace")
    reference, origin = sm.sourcemap_reference(headers, text)
    own_id = sm.discover_debug_id(text) if kind == "release_file" else None
    lengths = [utf16_length(line.rstrip("\r")) for line in text.split("\n")]
    return Minified(lengths, reference, origin, sm.ignored_sourcemap_comments(text), own_id)


def _read_bytes(store: BlobStore, blob_name: str, at: ZipRange | None, size: int) -> bytes:
    """Blocking: the whole content of a blob, or of a member at `at` inside a bundle's zip."""
    if at is None:
        return b"".join(store.open_range(blob_name, 0, None))
    raw = b"".join(store.open_range(blob_name, at.offset, at.compressed_size))
    if at.compression == 0:
        return raw
    if at.compression == zlib.DEFLATED:
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw, size)
    raise OSError(f"zip compression {at.compression} is stored extracted, not in place")


class RequestLookup:
    """One request's lookup state, as symbolicator keeps it per event: the bundles and
    individual release files the artifact lookup returned so far, and the queries made."""

    def __init__(self, backend: Backend, org: Organization, project: Project, release: str | None, dist: str | None):
        self.backend, self.org, self.project = backend, org, project
        self.release, self.dist = release, dist
        self.bundles: dict[int, str] = {}
        self.bundle_ids: dict[int, str] = {}
        self.files: dict[str, tuple[int, str]] = {}
        self.file_headers: dict[int, dict[str, str]] = {}
        self.queried: set[tuple[str | None, str | None]] = set()
        self.names: dict[str, list[UploadedName]] = {}
        # Per request, as symbolicator's per-event caches: what a lookup found (with the steps
        # and hints it recorded, replayed for the next frame of the same file), bytes read,
        # and what the minified files say.
        self.found: dict[tuple[str, str | None, str | None], tuple[File, list[Step], list[Hint]]] = {}
        self.read: dict[tuple[str, int | None], bytes] = {}
        self.minified: dict[str, Minified] = {}

    # --- the artifact lookup ----------------------------------------------------------------

    async def query(self, debug_id: str | None, abs_path: str | None, result: FrameResult) -> bool:
        """Ask the artifact lookup for a debug id and a file stem; True when it brought new
        bundles or files (query_sentry_for_files, lookup.rs)."""
        stem = sm.file_stem(abs_path) if abs_path else None
        if not debug_id and (not stem or not self.release):
            return False
        if (debug_id, stem) in self.queried:
            return False
        self.queried.add((debug_id, stem))
        hits = await artifact_lookup(
            self.backend, self.org, self.project, debug_id=debug_id, url=stem, version=self.release, dist=self.dist
        )
        new = 0
        for hit in hits:
            if hit.kind == "artifact_bundle" and hit.pk not in self.bundles:
                self.bundles[hit.pk] = hit.resolved_with
                new += 1
            elif hit.kind == "release_file" and hit.abs_path is not None and hit.abs_path not in self.files:
                self.files[hit.abs_path] = (hit.pk, hit.resolved_with)
                self.file_headers[hit.pk] = hit.headers or {}
                new += 1
        asked = ", ".join(
            part
            for part in (
                f"debug_id={debug_id}" if debug_id else "",
                f"release={self.release!r}" if self.release and stem else "",
                f"dist={self.dist!r}" if self.release and stem else "",
                f"url={stem!r}" if stem and self.release else "",
            )
            if part
        )
        kinds = sorted({f"{h.kind} ({h.resolved_with})" for h in hits})
        result.step(
            "artifact lookup", bool(hits), f"{asked} → {len(hits)} hit(s)" + (f": {', '.join(kinds)}" if kinds else "")
        )
        return new > 0

    def _ordered_bundles(self) -> list[int]:
        # ArtifactBundles is a BTreeMap by download URI, iterated in reverse (lookup.rs).
        return sorted(self.bundles, key=lambda pk: f"artifact_bundle/{pk}", reverse=True)

    async def _bundle_id(self, pk: int) -> str:
        if pk not in self.bundle_ids:
            async with self.backend.catalog.read() as tx:
                bundle = await tx.bundles.by_pk(pk)
            self.bundle_ids[pk] = bundle.bundle_id if bundle else str(pk)
        return self.bundle_ids[pk]

    # --- reading what was found -------------------------------------------------------------

    async def contents(self, f: File) -> bytes:
        """The file's bytes, read once per request; OSError when they cannot be read."""
        if f.data is None:
            key = (f.blob_name, f.zip_range.offset if f.zip_range else None)
            if key not in self.read:
                if f.size > MAX_RESOLVE_FILE_SIZE:
                    raise OSError(f"{f.size} bytes is more than resolve reads ({MAX_RESOLVE_FILE_SIZE})")
                self.read[key] = await asyncio.to_thread(
                    _read_bytes, self.backend.blobstore, f.blob_name, f.zip_range, f.size
                )
            f.data = self.read[key]
        return f.data

    async def minified_text(self, f: File) -> Minified:
        if f.sha1 not in self.minified:
            kept = self.backend.sourcemaps.minified_info(f.sha1)
            if isinstance(kept, Minified):
                self.minified[f.sha1] = kept
                return kept
            data = await self.contents(f)
            # A pass over the whole file (megabytes for a bundle): in a thread, off the loop.
            self.minified[f.sha1] = await asyncio.to_thread(_read_minified, data, f.headers, f.artifact.kind)
        return self.minified[f.sha1]

    async def _from_bundles(
        self, result: FrameResult, *, debug_id: str | None, urls: list[str], file_type: str
    ) -> File | None:
        async with self.backend.catalog.read() as tx:
            found = None
            if debug_id:
                for pk in self._ordered_bundles():
                    member = await tx.members.by_debug_id(pk, debug_id, file_type)
                    if member is not None:
                        found = (pk, member, "debug id", "debug-id")
                        break
            else:
                for url in urls:
                    holders = [pk for pk in self._ordered_bundles() if await tx.members.by_url(pk, url)]
                    if holders:
                        member = await tx.members.by_url(holders[0], url)
                        assert member is not None
                        found = (holders[0], member, url, self.bundles[holders[0]])
                        if len(holders) > 1:
                            await self._several_bundles_hint(result, url, holders)
                        break
        if found is None:
            return None
        pk, member, matched, resolved_with = found
        artifact = Artifact("artifact_bundle", await self._bundle_id(pk), member.url, matched)
        return File(
            artifact, resolved_with, member.sha1, member.headers, member.size, member.blob_name, member.zip_range
        )

    async def _several_bundles_hint(self, result: FrameResult, url: str, holders: list[int]) -> None:
        """More than one bundle of the lookup holds the name: Sentry takes the first in reverse
        order of its download URI as a string, not the newest (symbolicator#1198)."""
        ids = [await self._bundle_id(pk) for pk in holders]
        result.hint(
            "several_bundles",
            f"{len(holders)} bundles hold {url}; Sentry takes bundle {ids[0]} (the last by its download "
            f"URI artifact_bundle/{holders[0]}, compared as text), not necessarily the newest; the others: "
            + ", ".join(ids[1:]),
        )

    async def _from_release_files(self, urls: list[str]) -> File | None:
        for url in urls:
            if url in self.files:
                pk, resolved_with = self.files[url]
                async with self.backend.catalog.read() as tx:
                    f = await tx.files.get_in_project(self.project.id, pk)
                if f is None:
                    continue
                artifact = Artifact("release_file", str(f.id), f.name, url)
                return File(artifact, resolved_with, f.sha1, f.headers, f.size, f.blob_name, f.zip_range)
        return None

    async def get_file(
        self, result: FrameResult, what: str, abs_path: str | None, debug_id: str | None, file_type: str
    ) -> File | None:
        """A file by debug id first, else by URL candidates, asking the artifact lookup when
        what is known does not have it (get_file, try_get_file_with(out)_debug_id, lookup.rs).
        A file found for one (type, URL, debug id) is looked up once per request."""
        key = (file_type, abs_path, debug_id)
        if key in self.found:
            known, steps, hints = self.found[key]
            result.steps.extend(steps)
            result.hints.extend(hints)
            return known
        steps_before, hints_before = len(result.steps), len(result.hints)
        found = await self._get_file(result, what, abs_path, debug_id, file_type)
        # Only what was found: a later frame's lookup may bring the bundle a missing file is
        # in, and symbolicator would then find it there.
        if found is not None:
            self.found[key] = (found, result.steps[steps_before:], result.hints[hints_before:])
        return found

    async def _get_file(
        self, result: FrameResult, what: str, abs_path: str | None, debug_id: str | None, file_type: str
    ) -> File | None:
        urls = sm.candidate_urls(abs_path) if abs_path else []

        async def by_id() -> File | None:
            return await self._from_bundles(result, debug_id=debug_id, urls=[], file_type=file_type)

        async def by_path() -> File | None:
            return await self._from_bundles(result, debug_id=None, urls=urls, file_type=file_type) if urls else None

        async def individual() -> File | None:
            return await self._from_release_files(urls) if urls else None

        first = by_id if debug_id else by_path
        found = await first() or await individual()
        if found is None and await self.query(debug_id, abs_path, result):
            found = await first() or await individual()
        if found is None and debug_id:
            result.step(f"{what} by debug id", False, f"no uploaded {file_type} carries debug id {debug_id}")
            found = await by_path()
        if found is not None:
            result.step(what, True, found.artifact.describe())
        elif urls:
            result.step(what, False, "no upload named " + " or ".join(urls))
        return found

    async def uploaded_names(self, needle: str) -> list[UploadedName]:
        if needle not in self.names:
            async with self.backend.catalog.read() as tx:
                names = await tx.members.names_in_project(self.org.id, self.project.id, needle, MAX_HINT_NAMES)
                names += await tx.files.names_in_project(self.project.id, needle, MAX_HINT_NAMES)
            self.names[needle] = names
        return self.names[needle]
