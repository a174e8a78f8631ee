"""POST /projects/{org}/{project}/relserver/resolve/: Sentry's lookup over what was uploaded,
against the real build outputs of tests/resolve_app (uploaded here over the API; the
sentry-cli uploads are tests/test_resolve_uploads.py)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest

from relserver.config import MiB
from relserver.keys import backend_key
from relserver.services.sourcemap_cache import SourceMapCaches

from .bundle_helpers import make_bundle, upload_bundle
from .conftest import Client, assert_api_error, bearer, create_release, mint_token, upload
from .resolve_helpers import DIST, app_frames, assert_matches_both_truths, stack

RESOLVE = "/api/0/projects/acme/web/relserver/resolve/"
DEBUG_ID = "6a3b2c1d-0e0f-4a1b-8c2d-3e4f5a6b7c8d"


async def resolve(client: Client, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    resp = await client.post(RESOLVE, json=body, headers=bearer(token) if token else bearer())
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


def frames_json(build: str, text: str | None = None) -> list[dict[str, Any]]:
    return [
        {"abs_path": f.abs_path, "lineno": f.lineno, "colno": f.colno, "function": f.function}
        for f in app_frames(text if text is not None else stack(build))
    ]


async def upload_build(
    client: Client, build: str, *, version: str = "1.0", dist: str | None = None, prefix: str | None = None
) -> None:
    """The build's files as release files named `~/dist/<build>/…` (or under `prefix`)."""
    await create_release(client, version)
    for path in sorted((DIST / build).glob("app.js*")):
        name = f"{prefix or f'~/dist/{build}'}/{path.name}"
        resp = await upload(client, path.read_bytes(), version=version, name=name, dist=dist)
        assert resp.status == 201, await resp.text()


def errors(result: dict[str, Any]) -> list[str | None]:
    return [f["error"] for f in result["frames"]]


def hint_kinds(frame: dict[str, Any]) -> list[str]:
    return [h["kind"] for h in frame["hints"]]


class TestResolvesRealBuilds:
    async def test_release_files_resolve_every_frame_to_nodes_position_on_the_marked_line(self, client: Client) -> None:
        await upload_build(client, "esbuild")
        result = await resolve(client, {"release": "1.0", "frames": frames_json("esbuild")})
        assert result["ok"] is True
        assert_matches_both_truths(result["frames"], "esbuild")
        top = result["frames"][-1]
        assert (top["function"], top["found_by"]["resolved_with"]) == ("formatPrice", "release-old")
        assert top["found_by"]["minified"]["matched"] == "~/dist/esbuild/app.js"

    async def test_a_whole_error_stack_string_resolves_like_its_frames(self, client: Client) -> None:
        await upload_build(client, "esbuild")
        result = await resolve(client, {"release": "1.0", "stacktrace": stack("esbuild")})
        app = [f for f in result["frames"] if f["minified"]["abs_path"].startswith("app:///")]
        assert_matches_both_truths(app, "esbuild")
        # Node's own frames were not uploaded: Sentry could not resolve them either.
        assert {f["error"] for f in result["frames"] if f not in app} == {"missing_source"}
        assert result["ok"] is False

    async def test_a_webpack_bundle_with_release_and_dist_resolves_by_its_index(self, client: Client) -> None:
        files = {f"~/dist/webpack/{p.name}": p.read_bytes() for p in (DIST / "webpack").glob("app.js*")}
        bundle = make_bundle(files, release="2.0", dist="web", types={"~/dist/webpack/app.js.map": "source_map"})
        assert (await upload_bundle(client, bundle, version="2.0", dist="web"))["state"] == "ok"
        result = await resolve(client, {"release": "2.0", "dist": "web", "frames": frames_json("webpack")})
        assert_matches_both_truths(result["frames"], "webpack")
        assert {f["found_by"]["resolved_with"] for f in result["frames"]} == {"index"}
        assert result["frames"][-1]["filename"] == "./src/price.js"

    async def test_an_inline_data_url_map_resolves_without_a_map_upload(self, client: Client) -> None:
        await upload_build(client, "inline")
        result = await resolve(client, {"release": "1.0", "frames": frames_json("inline")})
        assert_matches_both_truths(result["frames"], "inline")
        assert result["frames"][0]["found_by"]["sourcemap"]["kind"] == "embedded"

    async def test_a_sectioned_index_map_resolves_like_the_flat_one(self, client: Client) -> None:
        await create_release(client, "1.0")
        flat = json.loads((DIST / "esbuild" / "app.js.map").read_text())
        sectioned = {"version": 3, "sections": [{"offset": {"line": 0, "column": 0}, "map": flat}]}
        await upload(client, (DIST / "esbuild" / "app.js").read_bytes(), name="~/dist/esbuild/app.js")
        await upload(client, json.dumps(sectioned).encode(), name="~/dist/esbuild/app.js.map")
        result = await resolve(client, {"release": "1.0", "frames": frames_json("esbuild")})
        assert_matches_both_truths(result["frames"], "esbuild")

    async def test_missing_sources_content_resolves_with_missing_source_content_then_with_the_original(
        self, client: Client
    ) -> None:
        await upload_build(client, "nocontent")
        result = await resolve(client, {"release": "1.0", "frames": frames_json("nocontent")})
        assert [f["resolved"] for f in result["frames"]] == [True] * 5
        assert set(errors(result)) == {"missing_source_content"}
        assert result["frames"][-1]["context_line"] is None
        assert "missing_source_content" in hint_kinds(result["frames"][-1])
        # The originals uploaded where the map's sources point: context comes from them.
        for name in ("index.js", "cart.js", "price.js"):
            data = (DIST.parent / "src" / name).read_bytes()
            assert (await upload(client, data, name=f"~/src/{name}")).status == 201
        result = await resolve(client, {"release": "1.0", "frames": frames_json("nocontent")})
        assert set(errors(result)) == {None}
        assert_matches_both_truths(result["frames"], "nocontent")

    async def test_a_built_cache_is_reused_by_the_next_request(self, client: Client) -> None:
        await upload_build(client, "esbuild")
        caches = client.app[backend_key].sourcemaps
        first = await resolve(client, {"release": "1.0", "frames": frames_json("esbuild")})
        second = await resolve(client, {"release": "1.0", "frames": frames_json("esbuild")})
        # Equal answers, but for the note on the step that built the cache the first time.
        first_json, second_json = json.dumps(first["frames"]), json.dumps(second["frames"])
        assert "(cache built)" in first_json and "(cache built)" not in second_json
        assert json.loads(first_json.replace(" (cache built)", "")) == second["frames"]
        assert (caches.builds, len(caches)) == (1, 1)


class TestFailureCauses:
    async def test_a_release_mismatch_is_missing_source_naming_the_release_that_has_the_file(
        self, client: Client
    ) -> None:
        await upload_build(client, "esbuild", version="1.0")
        await create_release(client, "1.1")
        result = await resolve(client, {"release": "1.1", "frames": frames_json("esbuild")[-1:]})
        (frame,) = result["frames"]
        assert (frame["resolved"], frame["error"]) == (False, "missing_source")
        assert "other_release" in hint_kinds(frame)
        assert any("release '1.0'" in h["detail"] for h in frame["hints"])

    async def test_a_dist_mismatch_is_missing_source_naming_the_dist_that_has_the_file(self, client: Client) -> None:
        await upload_build(client, "esbuild", dist="ios")
        for dist in (None, "android"):
            result = await resolve(client, {"release": "1.0", "dist": dist, "frames": frames_json("esbuild")[-1:]})
            (frame,) = result["frames"]
            assert frame["error"] == "missing_source"
            assert "other_dist" in hint_kinds(frame), frame["hints"]
        result = await resolve(client, {"release": "1.0", "dist": "ios", "frames": frames_json("esbuild")[-1:]})
        assert result["ok"] is True

    async def test_a_wrong_url_prefix_names_the_nearest_upload_and_the_prefix_that_matches(
        self, client: Client
    ) -> None:
        await upload_build(client, "esbuild", prefix="~")
        result = await resolve(client, {"release": "1.0", "frames": frames_json("esbuild")[-1:]})
        (frame,) = result["frames"]
        assert frame["error"] == "missing_source"
        (hint,) = [h for h in frame["hints"] if h["kind"] == "url_prefix"]
        assert "~/app.js" in hint["detail"] and "--url-prefix '~/dist/esbuild'" in hint["detail"]
        tried = [s for s in frame["steps"] if s["check"] == "minified file"]
        assert "app:///dist/esbuild/app.js or ~/dist/esbuild/app.js" in tried[-1]["detail"]

    async def test_an_event_without_debug_ids_finds_nothing_a_release_less_debug_id_upload_holds(
        self, client: Client
    ) -> None:
        await upload_debug_id_bundle(client)
        event = event_of(frames_json("esbuild"))
        result = await resolve(client, {"event": event})
        assert set(errors(result)) == {"missing_source"}
        assert "no_debug_id" in hint_kinds(result["frames"][0])
        event["debug_meta"] = {
            "images": [
                {"type": "sourcemap", "code_file": f["abs_path"], "debug_id": DEBUG_ID} for f in event_frames(event)
            ]
        }
        result = await resolve(client, {"event": event})
        assert_matches_both_truths(result["frames"], "esbuild")
        assert {f["found_by"]["resolved_with"] for f in result["frames"]} == {"debug-id"}

    async def test_an_unknown_debug_id_says_no_upload_carries_it(self, client: Client) -> None:
        await upload_debug_id_bundle(client)
        frames = [{**f, "debug_id": "00000000-0000-4000-8000-00000000beef"} for f in frames_json("esbuild")[-1:]]
        result = await resolve(client, {"frames": frames})
        (frame,) = result["frames"]
        assert frame["error"] == "missing_source"
        assert any(
            "no uploaded minified_source carries debug id 00000000-0000-4000-8000-00000000beef" in s["detail"]
            for s in frame["steps"]
        )

    async def test_a_rebuilt_file_that_is_shorter_than_the_position_is_not_the_file_that_ran(
        self, client: Client
    ) -> None:
        await create_release(client, "1.0")
        minified = (DIST / "esbuild" / "app.js").read_text().splitlines()
        rebuilt = "\n".join([minified[0][:100], *minified[1:]]) + "\n"
        await upload(client, rebuilt.encode(), name="~/dist/esbuild/app.js")
        await upload(client, (DIST / "esbuild" / "app.js.map").read_bytes(), name="~/dist/esbuild/app.js.map")
        result = await resolve(client, {"release": "1.0", "frames": frames_json("esbuild")})
        by_col = {f["minified"]["colno"]: f for f in result["frames"]}
        assert "past_end_of_file" in hint_kinds(by_col[177])
        assert "past_end_of_file" not in hint_kinds(by_col[28])

    async def test_a_map_that_was_not_uploaded_is_missing_sourcemap_naming_its_url(self, client: Client) -> None:
        await create_release(client, "1.0")
        await upload(client, (DIST / "esbuild" / "app.js").read_bytes(), name="~/dist/esbuild/app.js")
        result = await resolve(client, {"release": "1.0", "frames": frames_json("esbuild")[-1:]})
        (frame,) = result["frames"]
        assert (frame["error"], frame["sourcemap"]) == ("missing_sourcemap", "app:///dist/esbuild/app.js.map")

    async def test_a_map_that_is_not_a_map_is_malformed_sourcemap(self, client: Client) -> None:
        await create_release(client, "1.0")
        await upload(client, (DIST / "esbuild" / "app.js").read_bytes(), name="~/dist/esbuild/app.js")
        await upload(client, b"<html>not found</html>", name="~/dist/esbuild/app.js.map")
        result = await resolve(client, {"release": "1.0", "frames": frames_json("esbuild")[-1:]})
        assert errors(result) == ["malformed_sourcemap"]

    async def test_a_map_with_another_debug_id_is_named_as_not_the_files_pair(self, client: Client) -> None:
        await create_release(client, "1.0")
        source = (DIST / "esbuild" / "app.js").read_text() + f"//# debugId={DEBUG_ID}\n"
        mapping = json.loads((DIST / "esbuild" / "app.js.map").read_text())
        mapping["debugId"] = "11111111-2222-4333-8444-555555555555"
        await upload(client, source.encode(), name="~/dist/esbuild/app.js")
        await upload(client, json.dumps(mapping).encode(), name="~/dist/esbuild/app.js.map")
        result = await resolve(client, {"release": "1.0", "frames": frames_json("esbuild")[-1:]})
        assert "debug_id_mismatch" in hint_kinds(result["frames"][0])

    async def test_a_sourcemap_comment_sentry_ignores_leaves_the_frame_as_it_is_and_says_why(
        self, client: Client
    ) -> None:
        await create_release(client, "1.0")
        source = (DIST / "esbuild" / "app.js").read_text().replace("//# sourceMappingURL", "//#sourceMappingURL")
        await upload(client, source.encode(), name="~/dist/esbuild/app.js")
        await upload(client, (DIST / "esbuild" / "app.js.map").read_bytes(), name="~/dist/esbuild/app.js.map")
        result = await resolve(client, {"release": "1.0", "frames": frames_json("esbuild")[-1:]})
        (frame,) = result["frames"]
        assert (frame["resolved"], frame["error"]) == (False, None)
        assert "ignored_sourcemap_comment" in hint_kinds(frame)

    async def test_several_bundles_of_a_release_holding_the_file_name_the_one_sentry_takes(
        self, client: Client
    ) -> None:
        # Too many bundles per release (symbolicator#1198): an older build's bundle, then the
        # build that ran; the lookup takes bundle 2 (artifact_bundle/2 sorts after /1).
        names = {"app.js": "~/dist/esbuild/app.js", "app.js.map": "~/dist/esbuild/app.js.map"}
        types = {"~/dist/esbuild/app.js.map": "source_map"}
        bundle_ids = []
        for build, bundle_id in (("webpack", "00000000-0000-4000-8000-000000000001"), ("esbuild", DEBUG_ID)):
            files = {names[p.name]: p.read_bytes() for p in (DIST / build).glob("app.js*")}
            bundle = make_bundle(files, release="1.0", types=types, debug_id=bundle_id)
            assert (await upload_bundle(client, bundle, version="1.0"))["state"] == "ok"
            bundle_ids.append(bundle_id)
        result = await resolve(client, {"release": "1.0", "frames": frames_json("esbuild")})
        assert_matches_both_truths(result["frames"], "esbuild")
        top = result["frames"][-1]
        assert top["found_by"]["minified"]["id"] == DEBUG_ID
        (hint, map_hint) = [h for h in top["hints"] if h["kind"] == "several_bundles"]
        assert "hold ~/dist/esbuild/app.js;" in hint["detail"] and "app.js.map" in map_hint["detail"]
        assert f"Sentry takes bundle {DEBUG_ID}" in hint["detail"] and bundle_ids[0] in hint["detail"]

    async def test_a_line_below_one_is_invalid_location_and_looks_nothing_up(self, client: Client) -> None:
        await create_release(client, "1.0")
        result = await resolve(client, {"frames": [{"abs_path": "app:///dist/esbuild/app.js", "lineno": 0}]})
        assert errors(result) == ["invalid_location"]
        assert [s["check"] for s in result["frames"][0]["steps"]] == ["position"]


async def upload_debug_id_bundle(client: Client) -> None:
    """The esbuild build in a release-less bundle, its files carrying a debug id (what
    `sentry-cli sourcemaps inject` + `upload` sends)."""
    files = {f"~/dist/esbuild/{p.name}": p.read_bytes() for p in (DIST / "esbuild").glob("app.js*")}
    bundle = make_bundle(
        files,
        headers={f"~/dist/esbuild/{n}": {"debug-id": DEBUG_ID} for n in ("app.js", "app.js.map")},
        types={"~/dist/esbuild/app.js.map": "source_map"},
        debug_id=DEBUG_ID,
    )
    assert (await upload_bundle(client, bundle))["state"] == "ok"


def event_of(frames: list[dict[str, Any]]) -> dict[str, Any]:
    return {"platform": "javascript", "exception": {"values": [{"type": "Error", "stacktrace": {"frames": frames}}]}}


def event_frames(event: dict[str, Any]) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = event["exception"]["values"][0]["stacktrace"]["frames"]
    return frames


class TestTheEndpoint:
    async def test_bad_bodies_are_sentry_shaped_400s_saying_what_is_wrong(self, client: Client) -> None:
        await create_release(client, "1.0")
        resp = await client.post(RESOLVE, json={"frames": [{"lineno": 1}]}, headers=bearer())
        await assert_api_error(resp, 400, {"detail": "frames[0].abs_path: a non-empty string is required"})
        resp = await client.post(RESOLVE, data=b"{", headers={**bearer(), "Content-Type": "application/json"})
        assert resp.status == 400 and "JSON parse error" in (await resp.json())["detail"]

    async def test_extreme_positions_and_odd_names_are_answers_not_errors(self, client: Client) -> None:
        await upload_build(client, "esbuild")
        big = 2**31 - 1
        frames = [
            {"abs_path": "app:///dist/esbuild/app.js", "lineno": big, "colno": big},
            {"abs_path": "app:///dist/esbuild/app.js", "lineno": 1, "colno": big},
            {"abs_path": "app:///dist/esbuild/app.js", "lineno": 1, "colno": -5},
            {"abs_path": "~", "lineno": 1, "colno": 1},
            {"abs_path": "data:text/javascript,x", "lineno": 1},
            {"abs_path": "app:///dist/esbuild/app.js\u0000", "lineno": 1},
        ]
        result = await resolve(client, {"release": "1.0", "frames": frames})
        assert len(result["frames"]) == len(frames)
        assert "past_end_of_file" in hint_kinds(result["frames"][0])
        assert "past_end_of_file" in hint_kinds(result["frames"][1])

    async def test_it_takes_the_artifact_lookups_auth_and_scopes(self, client: Client) -> None:
        body = {"frames": [{"abs_path": "app:///a.js", "lineno": 0}]}
        assert (await client.post(RESOLVE, json=body)).status == 401
        resp = await client.post(RESOLVE, json=body, headers=bearer())
        await assert_api_error(resp, 404, {"detail": "The requested resource does not exist"})
        await create_release(client, "1.0")
        reader = await mint_token(client, scopes=["project:read"])
        assert (await resolve(client, body, reader))["frames"][0]["error"] == "invalid_location"
        outsider = await mint_token(client, scopes=["org:read"])
        assert (await client.post(RESOLVE, json=body, headers=bearer(outsider))).status == 403

    async def test_without_the_resolve_extra_it_answers_501_with_the_install_command(
        self, client: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await create_release(client, "1.0")
        # What an install without `relserver[resolve]` looks like to the import system.
        monkeypatch.setitem(sys.modules, "symbolic", None)
        resp = await client.post(RESOLVE, json={"frames": [{"abs_path": "a.js", "lineno": 1}]}, headers=bearer())
        assert resp.status == 501
        assert "pip install 'relserver[resolve]'" in (await resp.json())["detail"]


class TestTheCache:
    async def test_the_lru_evicts_the_least_recently_used_once_its_byte_budget_is_spent(self) -> None:
        minified = (DIST / "esbuild" / "app.js").read_bytes()
        mapping = (DIST / "esbuild" / "app.js.map").read_bytes()
        size = len(minified) + len(mapping)
        loads = []

        async def load() -> tuple[bytes, bytes]:
            loads.append(1)
            return minified, mapping

        caches = SourceMapCaches(max_bytes=2 * size)
        try:
            for key in ("a", "b", "a", "c"):
                await caches.get((key, key), load)
            assert caches.builds == len(loads) == 3
            assert caches.cached(("b", "b")) is None and caches.cached(("a", "a")) is not None
            assert caches.charged <= caches.max_bytes
        finally:
            caches.close()
        tiny = SourceMapCaches(max_bytes=size - 1)
        try:
            await tiny.get(("x", "x"), load)
            assert (len(tiny), tiny.charged) == (0, 0)
        finally:
            tiny.close()

    async def test_concurrent_requests_for_one_pair_share_one_build(self) -> None:
        minified = (DIST / "esbuild" / "app.js").read_bytes()
        mapping = (DIST / "esbuild" / "app.js.map").read_bytes()

        async def load() -> tuple[bytes, bytes]:
            return minified, mapping

        caches = SourceMapCaches(max_bytes=10 * MiB)
        try:
            answers = await asyncio.gather(*(caches.get(("k", "k"), load) for _ in range(5)))
            assert caches.builds == 1 and len({id(built) for built, _ in answers}) == 1
            assert sorted(was_cached for _, was_cached in answers) == [False, True, True, True, True]
        finally:
            caches.close()
