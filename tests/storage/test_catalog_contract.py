"""The catalog port's contract, run against every engine (DESIGN D8).

Each check goes through `Catalog.read()` / `write()` and the repositories they carry, never
through an engine's own connection, so a new engine joins by adding one line to ENGINES.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relserver.models import NewBundleFile, Organization, Project, Release, ReleaseScope, StoredBlob, ZipRange
from relserver.sentry import release_file_ident
from relserver.storage.catalog import Catalog, DuplicateReleaseFile, NewReleaseFile, ReleaseGone, WriteTx
from relserver.storage.sql.dialect import ts, utcnow
from relserver.storage.sql.sqlite import SqliteCatalog


def _sqlite(request: pytest.FixtureRequest) -> Catalog:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    return SqliteCatalog(tmp_path / "catalog.sqlite3", fsync=False)


def _postgres(request: pytest.FixtureRequest) -> Catalog:
    from relserver.storage.sql.postgres import PostgresCatalog

    return PostgresCatalog(request.getfixturevalue("pg_url"))


# Each engine, unopened, from the fixtures it needs.
ENGINES: dict[str, Callable[[pytest.FixtureRequest], Catalog]] = {"sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture(params=sorted(ENGINES))
async def catalog(request: pytest.FixtureRequest) -> AsyncIterator[Catalog]:
    opened = ENGINES[request.param](request)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class Boom(Exception):
    pass


async def seed(catalog: Catalog, version: str = "1.0") -> tuple[Organization, Project, Release]:
    async with catalog.write() as tx:
        org = await tx.organizations.ensure("acme")
        (project,) = await tx.projects.ensure(org.id, ["web"])
        release, _ = await tx.releases.get_or_create(
            org.id, version, ref=None, url=None, user_agent=None, date_released=None
        )
        await tx.releases.link(release.id, [project.id])
    return org, project, release


async def add_files(catalog: Catalog, release: Release, names: list[str], dist: str | None = None) -> None:
    now = ts(utcnow())
    assert now is not None
    async with catalog.write() as tx:
        dist_id = await tx.files.ensure_dist(release.id, dist, now) if dist else None
        blobs = [StoredBlob(sha1(name.encode()), len(name)) for name in names]
        await tx.blobs.add(blobs)
        await tx.files.insert_many(
            [
                NewReleaseFile(
                    organization_id=release.organization_id,
                    release_id=release.id,
                    dist_id=dist_id,
                    name=name,
                    ident=release_file_ident(name, dist),
                    headers={"Sourcemap": name + ".map"},
                    sha1=blob.sha1,
                    size=blob.size,
                    blob_sha1=blob.sha1,
                    date_created=now,
                )
                for name, blob in zip(names, blobs, strict=True)
            ]
        )


def member(path: str, *, debug_id: str | None = None, offset: int | None = 30) -> NewBundleFile:
    at = ZipRange(offset=offset, compressed_size=10, compression=8, crc=7) if offset is not None else None
    return NewBundleFile(
        path=path,
        url=f"~/{path}",
        file_type="minified_source",
        headers={},
        debug_id=debug_id,
        blob=StoredBlob(sha1(path.encode()), 100),
        zip_range=at,
    )


async def add_bundle(
    catalog: Catalog,
    org: Organization,
    project: Project,
    bundle_id: str,
    zip_bytes: bytes,
    *members: NewBundleFile,
    release: str | None = "1.0",
    dist: str | None = None,
) -> int:
    now = ts(utcnow())
    assert now is not None
    async with catalog.write() as tx:
        await tx.blobs.add([StoredBlob(sha1(zip_bytes), len(zip_bytes)), *(m.blob for m in members if not m.zip_range)])
        pk = await tx.bundles.create(org.id, bundle_id, sha1(zip_bytes), release, dist, now)
        await tx.bundles.link(pk, [project.id])
        await tx.bundles.add_members(pk, sha1(zip_bytes), list(members))
    return pk


class TestUnitsOfWork:
    async def test_a_write_commits_when_its_block_ends(self, catalog: Catalog) -> None:
        async with catalog.write() as tx:
            await tx.organizations.ensure("acme")
        async with catalog.read() as tx:
            assert (await tx.organizations.get("acme")) is not None

    async def test_a_write_that_raises_leaves_nothing_and_runs_no_after_commit(self, catalog: Catalog) -> None:
        ran: list[str] = []

        async def note() -> None:
            ran.append("after")

        with pytest.raises(Boom):
            async with catalog.write() as tx:
                await tx.organizations.ensure("acme")
                tx.after_commit(note)
                raise Boom
        async with catalog.read() as rtx:
            assert await rtx.organizations.get("acme") is None
        assert ran == []

    async def test_after_commit_runs_once_in_order_after_the_rows_are_visible(self, catalog: Catalog) -> None:
        seen: list[object] = []

        def recorder(label: str) -> Callable[[], Awaitable[None]]:
            async def record() -> None:
                async with catalog.read() as rtx:
                    seen.append((label, await rtx.organizations.get("acme") is not None))

            return record

        async with catalog.write() as tx:
            await tx.organizations.ensure("acme")
            tx.after_commit(recorder("first"))
            tx.after_commit(recorder("second"))
            assert seen == []
        assert seen == [("first", True), ("second", True)]

    async def test_concurrent_writes_each_see_the_others_committed_rows(self, catalog: Catalog) -> None:
        """Read-modify-write in forty transactions at once loses no update."""
        _org, _, release = await seed(catalog)

        async def bump(i: int) -> None:
            async with catalog.write() as tx:
                current = await tx.deploys.count(release.id)
                await tx.deploys.add(
                    release.id,
                    environment=f"env{current}",
                    name=None,
                    url=None,
                    date_started=None,
                    date_finished=utcnow(),
                )

        await asyncio.gather(*(bump(i) for i in range(40)))
        async with catalog.read() as tx:
            deploys = await tx.deploys.page(release.id, limit=100)
        assert sorted(d.environment for d in deploys) == sorted(f"env{i}" for i in range(40))

    async def test_a_cancelled_write_rolls_back_and_the_catalog_stays_usable(self, catalog: Catalog) -> None:
        started = asyncio.Event()

        async def slow() -> None:
            async with catalog.write() as tx:
                await tx.organizations.ensure("cancelled")
                started.set()
                await asyncio.sleep(10)

        task = asyncio.create_task(slow())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with catalog.write() as tx:
            await tx.organizations.ensure("acme")
        async with catalog.read() as rtx:
            assert await rtx.organizations.get("cancelled") is None
            assert await rtx.organizations.get("acme") is not None


class TestOrganizationsAndReleases:
    async def test_ensure_is_get_or_create_and_refs_are_slugs_or_ids(self, catalog: Catalog) -> None:
        async with catalog.write() as tx:
            first = await tx.organizations.ensure("acme")
            again = await tx.organizations.ensure("acme")
            projects = await tx.projects.ensure(first.id, ["web", "api", "web"])
        assert first == again
        assert [p.slug for p in projects] == ["web", "api", "web"] and projects[0] == projects[2]
        async with catalog.read() as tx:
            assert await tx.organizations.get(str(first.id)) == first
            assert [p.slug for p in await tx.projects.of_organization(first.id)] == ["api", "web"]
            assert await tx.projects.get(first.id, str(projects[1].id)) == projects[1]

    async def test_get_or_create_says_whether_it_created_and_link_whether_it_linked(self, catalog: Catalog) -> None:
        org, project, release = await seed(catalog)
        async with catalog.write() as tx:
            again, created = await tx.releases.get_or_create(
                org.id, "1.0", ref="other", url=None, user_agent=None, date_released=None
            )
            assert (again, created) == (release, False)
            assert not await tx.releases.link(release.id, [project.id])
        async with catalog.read() as tx:
            found = await tx.releases.scope("acme", "web", "1.0")
            assert found == ReleaseScope(org, project, release, True)
            assert await tx.releases.scope("acme", "nope", "1.0") is None
            assert await tx.releases.scope("acme", None, "2.0") is None

    async def test_the_token_and_the_release_scope_of_one_query_are_each_what_their_own_query_gives(
        self, catalog: Catalog
    ) -> None:
        org, project, release = await seed(catalog)
        async with catalog.write() as tx:
            token = await tx.tokens.insert(
                token_hash="h" * 64,
                label="t",
                scopes=["project:releases"],
                organization=None,
                kind="user",
                last_characters="hhhh",
            )
            (unlinked,) = await tx.projects.ensure(org.id, ["api"])
        cases = [
            ("acme", "web", "1.0"),
            ("acme", "api", "1.0"),  # a project the release is not linked to
            (str(org.id), str(project.id), "1.0"),
            ("acme", None, "1.0"),
            ("acme", "nope", "1.0"),
            ("acme", None, "2.0"),
            ("nope", None, "1.0"),
            ("9" * 30, None, "1.0"),  # digits no key holds: no query at all for the scope
            ("acme", None, "1.0\x00"),  # text PostgreSQL cannot hold: no query either
        ]
        async with catalog.read() as tx:
            for org_ref, project_ref, version in cases:
                alone = await tx.releases.scope(org_ref, project_ref, version)
                assert await tx.releases.scope_with_token("h" * 64, org_ref, project_ref, version) == (token, alone)
                assert await tx.releases.scope_with_token("x" * 64, org_ref, project_ref, version) == (None, None)
            assert (await tx.releases.scope("acme", "api", "1.0")) == ReleaseScope(org, unlinked, release, False)

    async def test_the_version_filter_is_a_literal_substring(self, catalog: Catalog) -> None:
        org, _, _ = await seed(catalog, "1.0")
        for version in ("100%", "1_0", "a\\b"):
            await seed(catalog, version)
        async with catalog.read() as tx:

            async def matching(query: str) -> list[str]:
                found = await tx.releases.page(
                    org.id, project_id=None, in_projects=(), query=query, status=None, offset=0, limit=10
                )
                return sorted(r.version for r in found)

            assert await matching("%") == ["100%"]
            assert await matching("_") == ["1_0"]
            assert await matching("\\") == ["a\\b"]

    async def test_writes_under_a_deleted_release_raise_release_gone(self, catalog: Catalog) -> None:
        _, _, release = await seed(catalog)
        async with catalog.write() as tx:
            await tx.releases.delete(release.id)
        async with catalog.write() as tx:
            with pytest.raises(ReleaseGone):
                await tx.releases.require(release.id)
            with pytest.raises(ReleaseGone):
                await tx.releases.update(release.id, {"ref": "abc"})
            assert await tx.releases.existing([release.id, release.id + 1]) == set()


class TestReleaseFiles:
    async def test_pages_are_by_name_and_filters_match_case_insensitively(self, catalog: Catalog) -> None:
        _, _, release = await seed(catalog)
        await add_files(catalog, release, ["~/b.js", "~/A.js", "~/c.map", "~/ab.css"])
        async with catalog.read() as tx:
            page = await tx.files.page(release.id, offset=1, limit=2)
            assert [f.name for f in page] == ["~/ab.css", "~/b.js"]
            # Terms of three characters or more may use an index; shorter ones scan; both agree.
            for query in (["A.JS"], ["a"], [".map", "b."], ["\x00js"]):
                names = sorted(f.name for f in await tx.files.page(release.id, offset=0, limit=10, queries=query))
                folded = [q.casefold() for q in query]
                expected = sorted(
                    n for n in ["~/b.js", "~/A.js", "~/c.map", "~/ab.css"] if any(q in n.casefold() for q in folded)
                )
                assert names == expected, query
                assert await tx.files.count(release.id, queries=query) == len(expected)
            assert [
                f.name for f in await tx.files.page(release.id, offset=0, limit=10, checksums=[sha1(b"~/b.js")])
            ] == ["~/b.js"]

    async def test_url_matches_filter_the_dist_exactly_before_the_limit(self, catalog: Catalog) -> None:
        _, _, release = await seed(catalog)
        await add_files(catalog, release, [f"~/App.{i}.js" for i in range(3)], dist="other")
        await add_files(catalog, release, ["~/app.js"], dist="web")
        await add_files(catalog, release, ["~/APP.min.js", "~/lib.js"])
        async with catalog.read() as tx:
            assert [f.name for f in await tx.files.matching_url(release.id, "app", "web", 2)] == ["~/app.js"]
            assert [f.name for f in await tx.files.matching_url(release.id, "app", None, 2)] == ["~/APP.min.js"]
            assert [f.name for f in await tx.files.matching_url(release.id, "app.", "other", 2)] == [
                "~/App.0.js",
                "~/App.1.js",
            ]

    async def test_lists_longer_than_the_engines_parameter_limit_work(self, catalog: Catalog) -> None:
        _, _, release = await seed(catalog)
        names = [f"~/{i:04}.js" for i in range(1_203)]
        await add_files(catalog, release, names)
        async with catalog.read() as tx:
            taken = await tx.files.taken_idents(release.id, [release_file_ident(n, None) for n in names] + ["nope"])
            assert len(taken) == len(names)
            assert len(await tx.blobs.sizes(sha1(n.encode()) for n in names)) == len(names)

    async def test_a_rename_onto_a_taken_ident_is_refused(self, catalog: Catalog) -> None:
        _, _, release = await seed(catalog)
        await add_files(catalog, release, ["~/a.js", "~/b.js"], dist="web")
        async with catalog.read() as tx:
            (a, _b) = await tx.files.page(release.id, offset=0, limit=10)
        async with catalog.write() as tx:
            assert await tx.files.dist_of(release.id, a.id) == (True, "web")
            with pytest.raises(DuplicateReleaseFile):
                await tx.files.rename(a.id, "~/b.js", release_file_ident("~/b.js", "web"))
        async with catalog.read() as tx:
            assert (await tx.files.get(release.id, a.id)) == a

    async def test_a_blob_is_freed_only_when_nothing_references_it(self, catalog: Catalog) -> None:
        org, _project, release = await seed(catalog)
        await add_files(catalog, release, ["~/shared.js", "~/own.js"])
        await seed(catalog, "2.0")
        async with catalog.read() as tx:
            other = await tx.releases.get(org.id, "2.0")
        assert other is not None
        await add_files(catalog, other, ["~/shared.js"])
        async with catalog.write() as tx:
            candidates = await tx.files.blobs_of(release.id)
            assert await tx.files.delete(release.id) == 2
            assert await tx.blobs.free(candidates) == [sha1(b"~/own.js")]
        check = await catalog.check()
        assert check.blob_rows == {sha1(b"~/shared.js")} and check.dangling == ()


class TestBlobReferences:
    """DESIGN D10: one row per sha1 whoever stores it, deletion deferred to a collector that
    re-checks references in its own transaction."""

    OLD = "2000-01-01T00:00:00.000000+00:00"
    LATER = "2999-01-01T00:00:00.000000+00:00"

    async def test_the_first_object_stored_for_a_sha1_is_its_row_and_the_others_are_losers(
        self, catalog: Catalog
    ) -> None:
        mine, theirs = StoredBlob(sha1(b"x"), 1, "a" * 32), StoredBlob(sha1(b"x"), 1, "b" * 32)
        async with catalog.write() as tx:
            assert await tx.blobs.add([theirs]) == []
        async with catalog.write() as tx:
            assert await tx.blobs.add([mine, StoredBlob(sha1(b"y"), 1, "c" * 32)]) == [mine]
            # The same bytes twice in one call: the second copy loses to the first.
            twice = [StoredBlob(sha1(b"z"), 1, "d" * 32), StoredBlob(sha1(b"z"), 1, "e" * 32)]
            assert await tx.blobs.add(twice) == [twice[1]]
            # A blob named by its sha1 (the disk engine) never loses.
            assert await tx.blobs.add([StoredBlob(sha1(b"x"), 1)]) == []
        async with catalog.read() as tx:
            found = await tx.blobs.get([sha1(b"x"), sha1(b"y"), sha1(b"nothing")])
            assert {k: b.name for k, b in found.items()} == {sha1(b"x"): "b" * 32, sha1(b"y"): "c" * 32}
            assert await tx.blobs.named(["b" * 32, "a" * 32, "d" * 32, sha1(b"x")]) == {"b" * 32, "d" * 32}
            assert await tx.blobs.names() == {"b" * 32, "c" * 32, "d" * 32}

    async def test_a_blob_whose_last_reference_went_is_collected_only_after_the_grace_period(
        self, catalog: Catalog
    ) -> None:
        _org, _project, release = await seed(catalog)
        await add_files(catalog, release, ["~/gone.js", "~/kept.js"])
        async with catalog.write() as tx:
            (gone,) = await tx.files.page(release.id, offset=0, limit=1)
            candidates = await tx.files.blobs_of(release.id, gone.id)
            await tx.files.delete(release.id, gone.id)
            # Stamped, not deleted; a referenced blob is never stamped.
            assert await tx.blobs.mark_unreferenced([*candidates, sha1(b"~/kept.js")], now=self.OLD) == 1
        async with catalog.write() as tx:
            # Not yet: the stamp is newer than the cutoff.
            assert await tx.blobs.collectable(self.OLD, 10) == []
        async with catalog.write() as tx:
            claimed = await tx.blobs.collectable(self.LATER, 10)
            assert claimed == [sha1(b"~/gone.js")]
            assert await tx.blobs.collect(claimed, self.LATER) == [sha1(b"~/gone.js")]
        assert (await catalog.check()).blob_rows == {sha1(b"~/kept.js")}

    async def test_thousands_of_freed_blobs_are_each_stamped_once_and_referenced_ones_never(
        self, catalog: Catalog
    ) -> None:
        """More candidates than one list parameter holds on SQLite (a release delete frees
        thousands), given twice over and in no order."""
        org, _project, _release = await seed(catalog)
        blobs = [StoredBlob(sha1(str(n).encode()), 1, f"{n:032x}") for n in range(1201)]
        async with catalog.write() as tx:
            await tx.blobs.add(blobs)
            await tx.chunks.own(org.id, blobs[::100])  # 13 of them still referenced
            candidates = [b.sha1 for b in reversed(blobs)] * 2
            assert await tx.blobs.mark_unreferenced(candidates, now=self.OLD) == 1201 - 13
            assert await tx.blobs.mark_unreferenced(candidates, now=self.OLD) == 0
        async with catalog.write() as tx:
            claimed = await tx.blobs.collectable(self.LATER, 2000)
        assert sorted(claimed) == sorted(b.sha1 for n, b in enumerate(blobs) if n % 100)

    async def test_a_blob_referenced_again_within_the_grace_period_is_not_collected(self, catalog: Catalog) -> None:
        org, _project, _release = await seed(catalog)
        blob = StoredBlob(sha1(b"chunk"), 5, "f" * 32)
        async with catalog.write() as tx:
            await tx.blobs.add([blob])
            assert await tx.blobs.mark_unreferenced([blob.sha1], now=self.OLD) == 1
        # Stored again (an upload's claim): the stamp goes, so no collector considers it.
        async with catalog.write() as tx:
            await tx.blobs.add([StoredBlob(blob.sha1, 5, "0" * 32)])
            await tx.chunks.own(org.id, [blob])
        async with catalog.write() as tx:
            assert await tx.blobs.collectable(self.LATER, 10) == []

    async def test_the_collector_rechecks_references_in_its_own_transaction(self, catalog: Catalog) -> None:
        """A reference that came after the stamp (a delete's stamp racing an upload's
        reference) keeps the blob: the collector's delete re-checks, and clears the stamp."""
        org, _project, _release = await seed(catalog)
        blob = StoredBlob(sha1(b"chunk"), 5, "f" * 32)
        async with catalog.write() as tx:
            await tx.blobs.add([blob])
            assert await tx.blobs.mark_unreferenced([blob.sha1], now=self.OLD) == 1
        async with catalog.write() as tx:
            claimed = await tx.blobs.collectable(self.LATER, 10)
            assert claimed == [blob.sha1]
            # Referenced between the claim and the delete, as another transaction could have
            # committed just before this one's statement.
            await tx.chunks.own(org.id, [blob])
            assert await tx.blobs.collect(claimed, self.LATER) == []
        async with catalog.write() as tx:
            assert await tx.blobs.collectable(self.LATER, 10) == []
        assert (await catalog.check()).blob_rows == {blob.sha1}

    async def test_the_start_up_sweep_of_a_shared_catalog_stamps_only_unreferenced_rows(self, catalog: Catalog) -> None:
        _org, _project, release = await seed(catalog)
        await add_files(catalog, release, ["~/kept.js"])
        async with catalog.write() as tx:
            await tx.blobs.add([StoredBlob(sha1(b"orphan"), 6, "9" * 32)])
            assert await tx.blobs.mark_all_unreferenced() == 1
            assert await tx.blobs.mark_all_unreferenced() == 0  # stamped once, not again
            assert await tx.blobs.collectable(self.LATER, 10) == [sha1(b"orphan")]

    async def test_one_process_claims_each_run_of_a_periodic_job(self, catalog: Catalog) -> None:
        async with catalog.write() as tx:
            assert await tx.blobs.claim_run("job", self.OLD, "2000-01-01T01:00:00.000000+00:00")
        async with catalog.write() as tx:
            assert not await tx.blobs.claim_run("job", "2000-01-01T00:30:00.000000+00:00", self.LATER)
        async with catalog.write() as tx:
            assert await tx.blobs.claim_run("job", "2000-01-01T01:00:00.000000+00:00", self.LATER)


class TestBundles:
    async def test_members_list_look_up_and_read_as_archive_entries(self, catalog: Catalog) -> None:
        org, project, _ = await seed(catalog)
        old = await add_bundle(catalog, org, project, "b-old", b"old zip", member("app.js"), member("old.js"))
        new = await add_bundle(
            catalog, org, project, "b-new", b"new zip", member("app.js", debug_id="d1"), member("x.js", offset=None)
        )
        async with catalog.read() as tx:
            listed = await tx.bundles.page(org.id, project.id, query=None, order="date_added", offset=0, limit=10)
            assert [b.bundle_id for b in listed] == ["b-old", "b-new"] and listed[1].file_count == 2
            assert [b.id for b in await tx.bundles.with_debug_id(org.id, project.id, "d1")] == [new]
            assert [
                b.id for b in await tx.bundles.for_release(org.id, project.id, "1.0", None, url="OLD.js", limit=5)
            ] == [old]
            entries = await tx.archive.page(org.id, "1.0", offset=0, limit=10)
            # The newer bundle wins a URL both hold.
            assert [(e.url, e.artifact_bundle_id) for e in entries] == [
                ("~/app.js", new),
                ("~/old.js", old),
                ("~/x.js", new),
            ]
            got = await tx.members.get(new, "x.js")
            assert got is not None and got.zip_range is None and got.blob_sha1 == sha1(b"x.js")
            indexed = await tx.members.get(new, "app.js")
            assert indexed is not None and indexed.blob_sha1 == sha1(b"new zip")
            assert indexed.zip_range == ZipRange(offset=30, compressed_size=10, compression=8, crc=7)

    async def test_dists_compare_null_safely(self, catalog: Catalog) -> None:
        org, project, _ = await seed(catalog)
        plain = await add_bundle(catalog, org, project, "plain", b"plain", member("a.js"))
        web = await add_bundle(catalog, org, project, "web", b"web", member("a.js"), dist="web")
        async with catalog.read() as tx:
            assert [b.id for b in await tx.bundles.for_release(org.id, project.id, "1.0", None, url=None, limit=5)] == [
                plain
            ]
            assert [
                b.id for b in await tx.bundles.for_release(org.id, project.id, "1.0", "web", url=None, limit=5)
            ] == [web]
            assert (await tx.archive.get(org.id, "1.0", None, "~/a.js")) is not None
            assert await tx.bundles.has_dist(org.id, "1.0", "web")
        async with catalog.write() as tx:
            removed, blobs = await tx.archive.remove(org.id, "1.0", None, "~/a.js")
        assert (removed, blobs) == (1, {sha1(b"plain")})
        async with catalog.read() as tx:
            assert (await tx.bundles.by_pk(plain)).file_count == 0  # type: ignore[union-attr]
            assert (await tx.bundles.by_pk(web)).file_count == 1  # type: ignore[union-attr]

    async def test_members_are_found_by_exact_url_by_debug_id_and_type_and_names_by_substring(
        self, catalog: Catalog
    ) -> None:
        org, project, release = await seed(catalog)
        old = await add_bundle(catalog, org, project, "b-old", b"old zip", member("dist/App.js"), dist="web")
        new = await add_bundle(catalog, org, project, "b-new", b"new zip", member("dist/app.js", debug_id="d1"))
        await add_files(catalog, release, ["~/static/app.js"], dist="ios")
        async with catalog.read() as tx:
            found = await tx.members.by_url(new, "~/dist/app.js")
            assert found is not None and found.path == "dist/app.js"
            assert await tx.members.by_url(old, "~/dist/app.js") is None  # case-sensitive, as Sentry
            assert (await tx.members.by_debug_id(new, "d1", "minified_source")) is not None
            assert await tx.members.by_debug_id(new, "d1", "source_map") is None
            names = await tx.members.names_in_project(org.id, project.id, "APP.JS", 10)
            assert [(n.name, n.release, n.dist) for n in names] == [
                ("~/dist/app.js", "1.0", None),
                ("~/dist/App.js", "1.0", "web"),
            ]
            files = await tx.files.names_in_project(project.id, "app.js", 10)
            assert [(n.kind, n.name, n.release, n.dist) for n in files] == [
                ("release_file", "~/static/app.js", "1.0", "ios")
            ]
            assert await tx.files.names_in_project(project.id, "nope", 10) == []

    async def test_a_bundle_in_two_projects_stays_until_the_last_unlinks(self, catalog: Catalog) -> None:
        org, project, _ = await seed(catalog)
        async with catalog.write() as tx:
            (other,) = await tx.projects.ensure(org.id, ["api"])
        pk = await add_bundle(catalog, org, project, "shared", b"zip", member("a.js"))
        async with catalog.write() as tx:
            await tx.bundles.link(pk, [other.id])
            assert await tx.bundles.unlink(pk, project.id)
            assert not await tx.bundles.unlink(pk, project.id)
            assert await tx.bundles.project_ids(pk) == {other.id}
            await tx.bundles.delete(pk)
            assert await tx.blobs.free([sha1(b"zip")]) == [sha1(b"zip")]
        async with catalog.read() as tx:
            assert await tx.bundles.by_bundle_id(org.id, "shared") is None
        assert (await catalog.check()).bundle_members == 0


class TestTasksTokensAndChunks:
    async def test_an_assemble_task_keeps_its_first_request(self, catalog: Catalog) -> None:
        org, _, _ = await seed(catalog)
        async with catalog.write() as tx:
            await tx.tasks.set(org.id, "kind", "abc", "created", request={"chunks": ["1"]})
            await tx.tasks.set(org.id, "kind", "abc", "assembling")
            await tx.tasks.set(org.id, "kind", "done", "ok")
        async with catalog.read() as tx:
            task = await tx.tasks.get(org.id, "kind", "abc")
            assert task is not None and task.state == "assembling"
            assert await tx.tasks.unfinished() == [(org.id, "kind", "abc", {"chunks": ["1"]})]

    async def test_a_lease_is_exclusive_until_it_runs_out_and_fences_the_outcome(self, catalog: Catalog) -> None:
        org, _, _ = await seed(catalog)
        key = (org.id, "kind", "abc")
        t0, t1, t2, t3 = (
            "2026-01-01T00:00:00.000000+00:00",
            "2026-01-01T00:00:10.000000+00:00",
            "2026-01-01T00:00:20.000000+00:00",
            "2026-01-01T00:00:40.000000+00:00",
        )
        async with catalog.write() as tx:
            await tx.tasks.set(*key, "created", request={"chunks": []})
            assert await tx.tasks.claim(*key, "a", t0, t2)
            assert not await tx.tasks.claim(*key, "b", t1, t3), "a's lease still runs at t1"
            assert await tx.tasks.unfinished(unleased_at=t1) == []
            assert await tx.tasks.renew(*key, "a", t2)
            assert [k[:3] for k in await tx.tasks.unfinished(unleased_at=t3)] == [key]
            # a died: at t3 its lease has run out, and b takes the task over.
            assert await tx.tasks.claim(*key, "b", t3, t3)
            assert not await tx.tasks.renew(*key, "a", t3)
            assert not await tx.tasks.finish(*key, "a", "ok", None), "a stale worker must not record"
            assert await tx.tasks.finish(*key, "b", "error", "why")
            assert not await tx.tasks.claim(*key, "c", t3, t3, force=True), "a finished task is not claimed"
            task = await tx.tasks.get(*key)
        assert task is not None and (task.state, task.detail) == ("error", "why")

    async def test_a_token_is_added_once_and_revoked_once(self, catalog: Catalog) -> None:
        async def insert(tx: WriteTx, label: str) -> None:
            await tx.tokens.insert(
                token_hash="h", label=label, scopes=["b", "a"], organization=None, kind="user", last_characters="1234"
            )

        async with catalog.write() as tx:
            await insert(tx, "first")
            await insert(tx, "second")
            (token,) = await tx.tokens.all()
            assert token.label == "first" and token.scopes == {"a", "b"} and not token.revoked
            assert await tx.tokens.revoke(token.id)
            assert not await tx.tokens.revoke(token.id)
        async with catalog.read() as rtx:
            stored = await rtx.tokens.get("h")
            assert stored is not None and stored.revoked
            assert await rtx.tokens.count() == 1

    async def test_chunks_are_owned_per_organization(self, catalog: Catalog) -> None:
        org, _, _ = await seed(catalog)
        chunk = StoredBlob(sha1(b"chunk"), 5)
        async with catalog.write() as tx:
            other = await tx.organizations.ensure("other")
            await tx.blobs.add([chunk])
            await tx.chunks.own(org.id, [chunk])
            await tx.chunks.own(org.id, [chunk])
        async with catalog.read() as tx:
            assert await tx.chunks.owned(org.id, [chunk.sha1, "x"]) == {chunk.sha1}
            assert await tx.chunks.owned(other.id, [chunk.sha1]) == set()
        async with catalog.write() as tx:
            assert await tx.blobs.free([chunk.sha1]) == []
            assert await tx.blobs.prune() == 0


class TestUiSessionsAndSummaries:
    async def test_a_session_is_found_by_hash_with_its_token_and_goes_with_its_expiry(self, catalog: Catalog) -> None:
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        async with catalog.write() as tx:
            token = await tx.tokens.insert(
                token_hash="t",
                label="x",
                scopes=["project:read"],
                organization="acme",
                kind="user",
                last_characters="1",
            )
            await tx.sessions.create("old", token.id, t0)
            await tx.sessions.create("new", token.id, t0 + timedelta(hours=2))
            await tx.sessions.touch((await tx.sessions.get("old") or pytest.fail()).id, t0 + timedelta(hours=1))
        async with catalog.read() as rtx:
            found = await rtx.sessions.get("old")
            assert found is not None
            assert found.token.id == token.id and found.token.organization == "acme"
            assert (found.date_created, found.date_last_seen) == (t0, t0 + timedelta(hours=1))
            assert await rtx.sessions.get("nope") is None
            assert await rtx.sessions.count(token.id) == 2
        async with catalog.write() as tx:
            cut = t0 + timedelta(minutes=90)
            assert await tx.sessions.delete_expired(created_before=t0 - timedelta(days=1), seen_before=cut) == 1
            assert await tx.sessions.get("old") is None
            assert await tx.sessions.delete_of_token(token.id) == 1
            assert not await tx.sessions.delete("new")

    async def test_summaries_count_a_projects_releases_files_and_bundles(self, catalog: Catalog) -> None:
        org, project, release = await seed(catalog)
        await add_files(catalog, release, ["~/a.js", "~/b.js"], dist="web")
        await add_bundle(catalog, org, project, "b-1", b"zip", member("x.js", debug_id="d-1"), dist="ios")
        await add_bundle(catalog, org, project, "b-2", b"zip2", member("y.js", debug_id="d-1"), release=None)
        async with catalog.write() as tx:
            other = await tx.organizations.ensure("other")
            (lonely,) = await tx.projects.ensure(org.id, ["empty"])
        async with catalog.read() as rtx:
            assert [o.slug for o in await rtx.summaries.organizations()] == ["acme", "other"]
            assert [o.id for o in await rtx.summaries.organizations("other")] == [other.id]
            counts = await rtx.summaries.project_counts(org.id)
            web = counts[project.id]
            assert (web.releases, web.release_files, web.bundles) == (1, 2, 2)
            assert web.last_upload is not None
            assert (counts[lonely.id].releases, counts[lonely.id].last_upload) == (0, None)
            release_counts = await rtx.summaries.release_counts(org.id, release.id, release.version)
            assert (release_counts.files, release_counts.bundles, release_counts.dists) == (2, 1, ("ios", "web"))
            hits = await rtx.summaries.members_with_debug_id(org.id, project.id, "d-1", limit=10)
            assert sorted(h.path for h in hits) == ["x.js", "y.js"]
            assert await rtx.summaries.members_with_debug_id(org.id, lonely.id, "d-1", limit=10) == []
