"""Artifact-bundle and release-bundle assembly (Sentry's assemble endpoints and
tasks/assemble.py), and what it leaves to see."""

from __future__ import annotations

import base64
import zipfile
from typing import Any

import pytest

from relserver.config import Config, KiB, MiB
from relserver.keys import assembler_key, catalog_key
from relserver.sentry import encode_archive_entry_id
from relserver.services import assembly
from relserver.services.assembly import ARTIFACT_BUNDLE

from .bundle_helpers import ORG_URL, assemble, make_bundle, split, upload_bundle, upload_chunks
from .conftest import (
    Client,
    ClientFactory,
    assert_api_error,
    bearer,
    create_release,
    files_url,
    sha1,
    stored_sha1s,
    temp_files,
    upload,
)

ASSEMBLE_URL = f"{ORG_URL}/artifactbundle/assemble/"
APP_JS = b"function a(){}\n//# sourceMappingURL=app.js.map\n"
APP_MAP = b'{"version":3,"sources":["a.js"],"names":[],"mappings":"AAAA"}'
DEBUG_ID = "2c8e1b3c-8a57-4d8c-9c1f-0123456789ab"


def basic_bundle(**kwargs: Any) -> bytes:
    return make_bundle(
        {"~/app.js": APP_JS, "~/app.js.map": APP_MAP},
        headers={"~/app.js": {"sourcemap": "app.js.map", "content-type": "text/javascript"}},
        types={"~/app.js.map": "source_map"},
        **kwargs,
    )


async def listing(client: Client, version: str = "1.0", query: str = "") -> list[dict[str, Any]]:
    resp = await client.get(f"{files_url(version)}{query}", headers=bearer())
    assert resp.status == 200, await resp.text()
    body: list[dict[str, Any]] = await resp.json()
    return body


class TestArtifactBundleAssemble:
    async def test_first_call_names_exactly_the_missing_chunks(self, client: Client) -> None:
        bundle = basic_bundle(release="1.0")
        chunks = split(bundle, 512)
        body = {"checksum": sha1(bundle), "chunks": [sha1(c) for c in chunks], "projects": ["web"]}
        await upload_chunks(client, chunks[:1])
        answer = await assemble(client, body)
        assert answer == {"state": "not_found", "missingChunks": sorted(sha1(c) for c in chunks[1:])}
        await upload_chunks(client, chunks[1:])
        # The call that starts a quick assembly answers its end state (ASSEMBLE_WAIT_SECONDS).
        assert await assemble(client, body) == {"state": "ok", "detail": None, "missingChunks": []}
        await client.app[assembler_key].wait_idle()
        assert await assemble(client, body) == {"state": "ok", "detail": None, "missingChunks": []}

    async def test_an_assembly_slower_than_the_wait_answers_created_then_its_state(
        self, client: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(assembly, "ASSEMBLE_WAIT_SECONDS", 0.0)
        bundle = basic_bundle(release="1.0")
        chunks = split(bundle, 512)
        body = {"checksum": sha1(bundle), "chunks": [sha1(c) for c in chunks], "projects": ["web"]}
        await upload_chunks(client, chunks)
        assert await assemble(client, body) == {"state": "created", "missingChunks": []}
        await client.app[assembler_key].wait_idle()
        assert await assemble(client, body) == {"state": "ok", "detail": None, "missingChunks": []}

    async def test_stored_bundle_lists_downloads_and_deletes_in_its_release(self, client: Client) -> None:
        await create_release(client, "1.0")
        assert (await upload(client, b"classic", name="~/z-classic.js")).status == 201
        result = await upload_bundle(client, basic_bundle(), version="1.0")
        assert result["state"] == "ok"
        files = await listing(client)
        # Classic files by name first, then the bundle's members (Sentry's archive entries).
        assert [f["name"] for f in files] == ["~/z-classic.js", "~/app.js", "~/app.js.map"]
        app = files[1]
        assert app == {
            "id": encode_archive_entry_id(None, "~/app.js"),
            "name": "~/app.js",
            "dist": None,
            "headers": {"sourcemap": "app.js.map", "content-type": "text/javascript"},
            "size": len(APP_JS),
            "sha1": sha1(APP_JS),
            "dateCreated": app["dateCreated"],
        }
        detail = await client.get(f"{files_url('1.0')}{app['id']}/", headers=bearer())
        assert await detail.json() == app
        download = await client.get(f"{files_url('1.0')}{app['id']}/?download", headers=bearer())
        assert await download.read() == APP_JS
        assert download.headers["Content-Type"] == "text/javascript"
        # The download is named after the member's path inside the bundle.
        assert download.headers["Content-Disposition"] == 'attachment; filename="app.js"'
        deleted = await client.delete(f"{files_url('1.0')}{app['id']}/", headers=bearer())
        assert deleted.status == 204
        assert [f["name"] for f in await listing(client)] == ["~/z-classic.js", "~/app.js.map"]
        again = await client.delete(f"{files_url('1.0')}{app['id']}/", headers=bearer())
        assert (again.status, await again.read()) == (404, b"")

    async def test_files_show_once_a_release_of_that_name_exists(self, client: Client) -> None:
        # sentry-cli 3.x never creates the release: the bundle only records its name.
        assert (await upload_bundle(client, basic_bundle(), version="2.0"))["state"] == "ok"
        resp = await client.get(files_url("2.0"), headers=bearer())
        assert resp.status == 404
        await create_release(client, "2.0")
        assert [f["name"] for f in await listing(client, "2.0")] == ["~/app.js", "~/app.js.map"]

    async def test_dist_entries_have_their_own_ids(self, client: Client) -> None:
        await create_release(client, "1.0")
        await upload_bundle(client, basic_bundle(), version="1.0", dist="web")
        files = await listing(client)
        assert {f["dist"] for f in files} == {"web"}
        assert files[0]["id"] == base64.urlsafe_b64encode(b"web_~/app.js").decode()
        resp = await client.get(f"{files_url('1.0')}{encode_archive_entry_id('nodist', '~/app.js')}/", headers=bearer())
        await assert_api_error(resp, 404, {"detail": "The requested resource does not exist"})

    async def test_filters_apply_to_bundle_members(self, client: Client) -> None:
        await create_release(client, "1.0")
        await upload_bundle(client, basic_bundle(), version="1.0")
        assert [f["name"] for f in await listing(client, query="?query=MAP")] == ["~/app.js.map"]
        # For archive entries Sentry tests "value in sha1", so a prefix matches (its quirk).
        prefix = sha1(APP_JS)[:12]
        assert [f["name"] for f in await listing(client, query=f"?checksum={prefix}")] == ["~/app.js"]

    async def test_reassembling_a_known_bundle_is_ok_at_once(self, client: Client) -> None:
        bundle = basic_bundle(release="1.0")
        assert (await upload_bundle(client, bundle))["state"] == "ok"
        body = {"checksum": sha1(bundle), "chunks": [sha1(c) for c in split(bundle, 1024)], "projects": ["web"]}
        assert await assemble(client, body) == {"state": "ok", "detail": None, "missingChunks": []}

    async def test_the_same_bundle_id_replaces_the_old_contents(self, client: Client, config: Config) -> None:
        await create_release(client, "1.0")
        await upload_bundle(client, make_bundle({"~/a.js": b"one"}, debug_id=DEBUG_ID), version="1.0")
        await upload_bundle(client, make_bundle({"~/b.js": b"two"}, debug_id=DEBUG_ID), version="1.0")
        assert [f["name"] for f in await listing(client)] == ["~/b.js"]
        # The first bundle's member blob went with it; chunks stay (they are the org's).
        assert sha1(b"one") not in set(stored_sha1s(config))

    async def test_a_newer_bundle_wins_for_the_same_url(self, client: Client) -> None:
        await create_release(client, "1.0")
        await upload_bundle(client, make_bundle({"~/a.js": b"old", "~/keep.js": b"k"}), version="1.0")
        await upload_bundle(client, make_bundle({"~/a.js": b"new"}), version="1.0")
        files = {f["name"]: f["sha1"] for f in await listing(client)}
        assert files == {"~/a.js": sha1(b"new"), "~/keep.js": sha1(b"k")}

    async def test_release_less_bundle_needs_debug_ids(self, client: Client) -> None:
        result = await upload_bundle(client, make_bundle({"~/a.js": b"x"}))
        assert result == {
            "state": "error",
            "detail": "uploading a bundle without debug ids or release is prohibited",
            "missingChunks": [],
        }
        ok = make_bundle({"~/a.js": b"x"}, headers={"~/a.js": {"debug-id": DEBUG_ID}})
        assert (await upload_bundle(client, ok))["state"] == "ok"


class TestAssembleErrors:
    @pytest.mark.parametrize(
        ("body", "error"),
        [
            ({"checksum": "a" * 40, "chunks": []}, "'projects' is a required property"),
            (
                {"checksum": "a" * 40, "chunks": [], "projects": [], "lol": 1},
                "Additional properties are not allowed ('lol' was unexpected)",
            ),
            (
                {"checksum": "A" * 40, "chunks": [], "projects": ["web"]},
                "The checksum field is required and must be a 40-character hexadecimal string.",
            ),
            (
                {"checksum": "a" * 40, "chunks": ["x"], "projects": ["web"]},
                "The chunks field is required and must be provided as an array of 40-character hexadecimal strings.",
            ),
            (
                {"checksum": "a" * 40, "chunks": [], "projects": "web"},
                "The projects field is required and must be provided as an array of strings.",
            ),
            (
                {"checksum": "a" * 40, "chunks": [], "projects": ["web"], "version": "a/b"},
                'The version field cannot be empty and cannot contain any "/" characters.',
            ),
            ({"checksum": "a" * 40, "chunks": [], "projects": ["web"], "dist": 1}, "The dist field must be a string."),
            ({"checksum": "a" * 40, "chunks": [], "projects": []}, "You need to specify at least one project"),
            ({"checksum": "a" * 40, "chunks": [], "projects": ["web", "web"]}, "One or more projects are invalid"),
            ({"checksum": "a" * 40, "chunks": [], "projects": ["Not A Slug"]}, "One or more projects are invalid"),
        ],
    )
    async def test_body_errors_are_sentrys(self, client: Client, body: dict[str, Any], error: str) -> None:
        resp = await client.post(ASSEMBLE_URL, json=body, headers=bearer())
        await assert_api_error(resp, 400, {"error": error})

    async def test_a_body_that_is_not_json_is_sentrys_400(self, client: Client) -> None:
        resp = await client.post(ASSEMBLE_URL, data=b"{", headers={**bearer(), "Content-Type": "application/json"})
        await assert_api_error(resp, 400, {"error": "Invalid json body"})

    async def test_no_chunks_is_not_found(self, client: Client) -> None:
        assert await assemble(client, {"checksum": "a" * 40, "chunks": [], "projects": ["web"]}) == {
            "state": "not_found",
            "missingChunks": [],
        }

    async def test_a_dist_without_a_version_is_sentrys_400(self, client: Client) -> None:
        await upload_chunks(client, [b"c"])
        resp = await client.post(
            ASSEMBLE_URL,
            json={"checksum": sha1(b"c"), "chunks": [sha1(b"c")], "projects": ["web"], "dist": "d"},
            headers=bearer(),
        )
        await assert_api_error(resp, 400, {"error": "You need to specify a release together with a dist"})

    async def test_chunks_that_do_not_hash_to_the_checksum_end_in_sentrys_error(self, client: Client) -> None:
        await upload_chunks(client, [b"part"])
        body = {"checksum": sha1(b"something else"), "chunks": [sha1(b"part")], "projects": ["web"], "version": "1"}
        await assemble(client, body)
        await client.app[assembler_key].wait_idle()
        assert await assemble(client, body) == {
            "state": "error",
            "detail": "Reported checksum mismatch",
            "missingChunks": [],
        }

    @pytest.mark.parametrize(
        ("payload", "detail"),
        [
            pytest.param(b"not a zip at all", "the bundle is invalid", id="not-a-zip"),
            pytest.param(make_bundle({}, manifest={"files": []}), "the bundle is invalid", id="bad-manifest"),
            pytest.param(
                make_bundle({"~/a.js": b"x"}, manifest={"files": {"files/_/_/gone.js": {"url": "~/gone.js"}}}),
                "the bundle is invalid: files/_/_/gone.js is in the manifest but not in the archive",
                id="missing-member",
            ),
        ],
    )
    async def test_bad_bundles_end_in_error(self, client: Client, config: Config, payload: bytes, detail: str) -> None:
        result = await upload_bundle(client, payload, version="1.0")
        assert result == {"state": "error", "detail": detail, "missingChunks": []}
        assert temp_files(config) == []

    async def test_a_zip_without_a_manifest_ends_in_error_as_an_invalid_bundle(self, client: Client) -> None:
        import io

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("files/_/_/a.js", "x")
        result = await upload_bundle(client, buffer.getvalue(), version="1.0")
        assert (result["state"], result["detail"]) == ("error", "the bundle is invalid")

    async def test_file_over_the_size_limit(self, make_client: ClientFactory, config: Config) -> None:
        client = await make_client(config.with_overrides(max_file_size=2 * KiB))
        bundle = make_bundle({"~/a.js": bytes(range(256)) * 16}, release="1", compression=zipfile.ZIP_STORED)
        result = await upload_bundle(client, bundle)
        assert result["detail"] == f"File artifact-bundle.zip exceeds maximum size ({len(bundle)} > {2 * KiB})"


# Small enough that every bundle below spans several chunks, so its own blob would be new.
CAP_CHUNK_SIZE = 128


async def assert_nothing_stored(client: Client, config: Config, bundle: bytes, chunk_size: int) -> None:
    """A failed assembly leaves what was there before it: the uploaded chunks, and nothing else
    (no temp file, no blob of the bundle or its members, no bundle or file row)."""
    chunks = {sha1(c) for c in split(bundle, chunk_size)}
    assert sha1(bundle) not in chunks, "the bundle must span several chunks for its blob to show"
    assert temp_files(config) == []
    assert set(stored_sha1s(config)) == chunks
    assert (await client.app[catalog_key].check()).blob_rows == chunks
    check = await client.app[catalog_key].check()
    assert (check.release_files, check.bundle_members) == (0, 0)
    resp = await client.get("/api/0/projects/acme/web/files/artifact-bundles/", headers=bearer())
    assert (resp.status, await resp.json()) == (200, [])


class TestBombCaps:
    """Every cap is checked on the zip's central directory: a bundle over one ends in `error`
    naming the cap, and stores nothing."""

    async def test_a_bundle_over_the_member_count_cap_ends_in_error_and_stores_nothing(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(max_bundle_members=3))
        bundle = make_bundle({f"~/{i}.js": b"x" for i in range(4)}, release="1")
        result = await upload_bundle(client, bundle, chunk_size=CAP_CHUNK_SIZE)
        assert result == {"state": "error", "detail": "the bundle has too many files (4 > 3)", "missingChunks": []}
        await assert_nothing_stored(client, config, bundle, CAP_CHUNK_SIZE)

    async def test_a_member_over_the_size_cap_ends_in_error_and_stores_nothing(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(max_bundle_member_size=1000))
        bundle = make_bundle({"~/big.js": b"x" * 1001}, release="1")
        result = await upload_bundle(client, bundle, chunk_size=CAP_CHUNK_SIZE)
        detail = "the bundle member files/_/_/big.js is too large (1001 > 1000)"
        assert result == {"state": "error", "detail": detail, "missingChunks": []}
        await assert_nothing_stored(client, config, bundle, CAP_CHUNK_SIZE)

    async def test_a_bundle_over_the_expanded_size_cap_ends_in_error_and_stores_nothing(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(max_bundle_expanded_size=1500))
        bundle = make_bundle({"~/a.js": b"a" * 1000, "~/b.js": b"b" * 1000}, release="1")
        result = await upload_bundle(client, bundle, chunk_size=CAP_CHUNK_SIZE)
        assert result == {"state": "error", "detail": "the bundle expands to more than 1500 bytes", "missingChunks": []}
        await assert_nothing_stored(client, config, bundle, CAP_CHUNK_SIZE)

    async def test_a_member_over_the_compression_ratio_cap_ends_in_error_and_stores_nothing(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(max_file_size=64 * MiB))
        bundle = make_bundle({"~/zeros.js": bytes(8 * MiB)}, release="1")
        result = await upload_bundle(client, bundle, chunk_size=KiB)
        assert result["state"] == "error"
        assert result["detail"].startswith("the bundle member files/_/_/zeros.js is compressed suspiciously well (")
        assert result["detail"].endswith(":1 > 200:1)")
        await assert_nothing_stored(client, config, bundle, KiB)


class TestRestart:
    async def test_an_interrupted_assembly_finishes_after_a_restart(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        first = await make_client(config)
        await create_release(first, "1.0")
        bundle = basic_bundle()
        chunks = split(bundle, 1024)
        await upload_chunks(first, chunks)
        async with first.app[catalog_key].write() as tx:
            org = await tx.organizations.ensure("acme")
            project = await tx.projects.get(org.id, "web")
            assert project is not None
            # As if the process died right after answering `created`.
            request = {"chunks": [sha1(c) for c in chunks], "projects": [project.id], "version": "1.0", "dist": None}
            await tx.tasks.set(org.id, ARTIFACT_BUNDLE, sha1(bundle), "assembling", request=request)
        await first.close()

        second = await make_client(config)
        await second.app[assembler_key].wait_idle()
        body = {"checksum": sha1(bundle), "chunks": request["chunks"], "projects": ["web"], "version": "1.0"}
        assert (await assemble(second, body))["state"] == "ok"
        assert [f["name"] for f in await listing(second)] == ["~/app.js", "~/app.js.map"]


async def test_a_bundles_zip_is_a_referenced_blob_and_survives_the_sweep(
    make_client: ClientFactory, config: Config
) -> None:
    """Found by scripts/torture.py: the zip had no blob row, so a restart swept it away."""
    first = await make_client(config)
    bundle = basic_bundle(release="1.0")
    assert (await upload_bundle(first, bundle))["state"] == "ok"
    assert sha1(bundle) in (await first.app[catalog_key].check()).blob_rows
    await first.close()
    second = await make_client(config)
    (hit,) = await (await second.get("/api/0/projects/acme/web/artifact-lookup/?release=1.0", headers=bearer())).json()
    resp = await second.get(f"/api/0/projects/acme/web/artifact-lookup/?download={hit['id']}", headers=bearer())
    assert await resp.read() == bundle


class TestReleaseBundle:
    async def assemble_release(self, client: Client, bundle: bytes, version: str = "1.0") -> dict[str, Any]:
        chunks = split(bundle, 1024)
        await upload_chunks(client, chunks)
        body = {"checksum": sha1(bundle), "chunks": [sha1(c) for c in chunks]}
        url = f"{ORG_URL}/releases/{version}/assemble/"
        first = await (await client.post(url, json=body, headers=bearer())).json()
        await client.app[assembler_key].wait_idle()
        result: dict[str, Any] = await (await client.post(url, json=body, headers=bearer())).json()
        # A quick assembly is answered by the call that started it, exactly as a later poll.
        assert first == result
        return result

    async def test_unpacks_into_release_files_with_upsert(self, client: Client) -> None:
        await create_release(client, "1.0")
        result = await self.assemble_release(client, basic_bundle(release="1.0", dist="d1"))
        assert result == {"state": "ok", "detail": None, "missingChunks": []}
        files = await listing(client)
        assert [(f["name"], f["dist"]) for f in files] == [("~/app.js", "d1"), ("~/app.js.map", "d1")]
        assert files[0]["id"].isdigit()
        assert files[0]["headers"] == {"sourcemap": "app.js.map", "content-type": "text/javascript"}
        first_id = files[0]["id"]
        changed = make_bundle({"~/app.js": b"new content"}, release="1.0", dist="d1")
        assert (await self.assemble_release(client, changed))["state"] == "ok"
        by_name = {f["name"]: f for f in await listing(client)}
        # Upsert: the same row, its content replaced, no 409; the other file is untouched.
        assert (by_name["~/app.js"]["id"], by_name["~/app.js"]["sha1"]) == (first_id, sha1(b"new content"))
        assert by_name["~/app.js.map"]["sha1"] == sha1(APP_MAP)

    @pytest.mark.parametrize(
        ("kwargs", "detail"),
        [
            ({"release": "1.0", "org": "other"}, "organization does not match uploaded bundle"),
            ({"release": "2.0"}, "release does not match uploaded bundle"),
        ],
    )
    async def test_manifest_must_match(self, client: Client, kwargs: dict[str, str], detail: str) -> None:
        await create_release(client, "1.0")
        result = await self.assemble_release(client, basic_bundle(**kwargs))
        assert (result["state"], result["detail"]) == ("error", detail)

    async def test_unknown_release_is_404(self, client: Client) -> None:
        resp = await client.post(
            f"{ORG_URL}/releases/nope/assemble/", json={"checksum": "a" * 40, "chunks": []}, headers=bearer()
        )
        await assert_api_error(resp, 404, {"detail": "The requested resource does not exist"})

    async def test_schema_errors_keep_the_validators_words(self, client: Client) -> None:
        await create_release(client, "1.0")
        resp = await client.post(f"{ORG_URL}/releases/1.0/assemble/", json={"checksum": "a" * 40}, headers=bearer())
        await assert_api_error(resp, 400, {"error": "'chunks' is a required property"})
