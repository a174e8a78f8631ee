"""Artifact bundles as Sentry lists them, the artifact lookup, organization details, deploys."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from .bundle_helpers import make_bundle, upload_bundle
from .conftest import Client, assert_api_error, bearer, create_release, mint_token, upload

PROJECT = "/api/0/projects/acme/web"
DEBUG_ID = "2c8e1b3c-8a57-4d8c-9c1f-0123456789ab"
APP_JS = b"function a(){}\n"


async def get_json(client: Client, url: str, token: str | None = None) -> Any:
    resp = await client.get(url, headers=bearer(token) if token else bearer())
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def bundle_with_debug_id(client: Client, **kwargs: Any) -> dict[str, Any]:
    bundle = make_bundle(
        {"~/app.js": APP_JS, "~/app.js.map": b"{}"},
        headers={"~/app.js": {"debug-id": DEBUG_ID, "sourcemap": "app.js.map"}, "~/app.js.map": {"debug-id": DEBUG_ID}},
        types={"~/app.js.map": "source_map"},
        debug_id="b0b0b0b0-0000-4000-8000-000000000001",
        **kwargs,
    )
    result = await upload_bundle(client, bundle, version=kwargs.get("release"))
    assert result["state"] == "ok", result
    return result


class TestBundleList:
    async def test_items_have_sentrys_keys(self, client: Client) -> None:
        await bundle_with_debug_id(client, release="1.0", dist="d")
        (item,) = await get_json(client, f"{PROJECT}/files/artifact-bundles/")
        assert list(item) == ["bundleId", "associations", "fileCount", "dateModified", "date"]
        assert item["bundleId"] == "b0b0b0b0-0000-4000-8000-000000000001"
        assert item["associations"] == [{"release": "1.0", "dist": "d"}]
        assert item["fileCount"] == 2
        assert item["date"].endswith("Z") and len(item["date"]) == 20

    async def test_bundles_list_newest_first_filter_by_query_and_sort_only_by_date(self, client: Client) -> None:
        await upload_bundle(client, make_bundle({"~/a.js": b"a"}), version="1.0")
        await upload_bundle(client, make_bundle({"~/b.js": b"b"}), version="2.0")
        newest_first = await get_json(client, f"{PROJECT}/files/artifact-bundles/")
        assert [i["associations"][0]["release"] for i in newest_first] == ["2.0", "1.0"]
        oldest_first = await get_json(client, f"{PROJECT}/files/artifact-bundles/?sortBy=date_added")
        assert [i["associations"][0]["release"] for i in oldest_first] == ["1.0", "2.0"]
        only = await get_json(client, f"{PROJECT}/files/artifact-bundles/?query=2.0")
        assert [i["associations"][0]["release"] for i in only] == ["2.0"]
        resp = await client.get(f"{PROJECT}/files/artifact-bundles/?sortBy=name", headers=bearer())
        await assert_api_error(
            resp,
            400,
            {
                "detail": {
                    "code": "invalid_sort_by_parameter",
                    "message": "You can either sort via 'date_added' or 'date_modified'",
                    "extra": {},
                }
            },
        )

    async def test_ten_per_page_with_links(self, client: Client) -> None:
        for i in range(11):
            await upload_bundle(client, make_bundle({f"~/{i}.js": bytes([i])}), version=f"v{i}")
        resp = await client.get(f"{PROJECT}/files/artifact-bundles/", headers=bearer())
        assert len(await resp.json()) == 10
        assert 'rel="next"; results="true"; cursor="10:1:0"' in resp.headers["Link"]

    async def test_delete_by_bundle_id(self, client: Client) -> None:
        await create_release(client, "1.0")
        await bundle_with_debug_id(client, release="1.0")
        url = f"{PROJECT}/files/artifact-bundles/"
        resp = await client.delete(url, headers=bearer())
        await assert_api_error(resp, 404, {"error": "Supplied an invalid bundle_id None"})
        resp = await client.delete(f"{url}?bundleId=b0b0b0b0-0000-4000-8000-000000000001", headers=bearer())
        assert (resp.status, await resp.read()) == (204, b"")
        assert await get_json(client, url) == []
        assert await get_json(client, "/api/0/projects/acme/web/releases/1.0/files/") == []
        # Unknown ids are a 204 in the newest Sentry too.
        assert (await client.delete(f"{url}?bundleId=nope", headers=bearer())).status == 204

    async def test_delete_from_one_project_keeps_it_for_another(self, client: Client) -> None:
        bundle = make_bundle({"~/a.js": b"shared"}, release="1.0")
        assert (await upload_bundle(client, bundle, projects=["web", "mobile"]))["state"] == "ok"
        (item,) = await get_json(client, f"{PROJECT}/files/artifact-bundles/")
        resp = await client.delete(f"{PROJECT}/files/artifact-bundles/?bundleId={item['bundleId']}", headers=bearer())
        assert resp.status == 204
        assert await get_json(client, f"{PROJECT}/files/artifact-bundles/") == []
        assert len(await get_json(client, "/api/0/projects/acme/mobile/files/artifact-bundles/")) == 1
        resp = await client.delete(f"{PROJECT}/files/artifact-bundles/?bundleId={item['bundleId']}", headers=bearer())
        await assert_api_error(
            resp, 404, {"error": f"Artifact bundle with {item['bundleId']} found but it is not connected to project 1"}
        )


class TestBundleFiles:
    async def test_files_of_a_bundle(self, client: Client) -> None:
        await bundle_with_debug_id(client, release="1.0")
        body = await get_json(client, f"{PROJECT}/artifact-bundles/b0b0b0b0-0000-4000-8000-000000000001/files/")
        assert body["fileCount"] == 2
        assert body["associations"] == [{"release": "1.0", "dist": None}]
        first = body["files"][0]
        assert first == {
            "id": base64.urlsafe_b64encode(b"files/_/_/app.js").decode(),
            "fileType": 2,
            "filePath": "~/app.js",
            "fileSize": len(APP_JS),
            "debugId": DEBUG_ID,
            "sourcemap": "app.js.map",
        }
        assert body["files"][1]["fileType"] == 3

    async def test_a_member_downloads_by_its_id_and_bad_ids_unknown_paths_and_readers_are_refused(
        self, client: Client
    ) -> None:
        await bundle_with_debug_id(client, release="1.0")
        file_id = base64.urlsafe_b64encode(b"files/_/_/app.js").decode()
        base = f"{PROJECT}/artifact-bundles/b0b0b0b0-0000-4000-8000-000000000001/files"
        resp = await client.get(f"{base}/{file_id}/", headers=bearer())
        assert await resp.read() == APP_JS
        assert resp.headers["Content-Disposition"] == 'attachment; filename="app.js"'
        missing = base64.urlsafe_b64encode(b"files/_/_/nope.js").decode()
        await assert_api_error(
            await client.get(f"{base}/{missing}/", headers=bearer()),
            404,
            {"error": "The file files/_/_/nope.js can't be found in the artifact bundle"},
        )
        for bad_id in ("abc", "_w=="):  # bad padding; not UTF-8
            await assert_api_error(
                await client.get(f"{base}/{bad_id}/", headers=bearer()),
                400,
                {"error": f"The file_id {bad_id} is invalid"},
            )
        reader = await mint_token(client, scopes=["project:read"])
        await assert_api_error(
            await client.get(f"{base}/{file_id}/", headers=bearer(reader)),
            403,
            {"error": "You don't have the permissions to download this file"},
        )

    async def test_an_unknown_bundle_id_is_sentrys_400_not_a_404(self, client: Client) -> None:
        await create_release(client, "1.0")
        resp = await client.get(f"{PROJECT}/artifact-bundles/nope/files/", headers=bearer())
        await assert_api_error(
            resp, 400, {"error": "The artifact bundle with nope is not bound to this project or doesn't exist"}
        )


class TestArtifactLookup:
    async def test_finds_a_bundle_by_debug_id(self, client: Client) -> None:
        await bundle_with_debug_id(client)
        results = await get_json(client, f"{PROJECT}/artifact-lookup/?debug_id={DEBUG_ID.replace('-', '').upper()}")
        assert len(results) == 1
        (hit,) = results
        assert hit["type"] == "bundle" and hit["resolved_with"] == "debug-id"
        assert hit["url"].endswith(f"{PROJECT}/artifact-lookup/?download={hit['id']}")
        # The download is the bundle itself, which Sentry's processing unpacks.
        resp = await client.get(f"{PROJECT}/artifact-lookup/?download={hit['id']}", headers=bearer())
        assert (await resp.read()).startswith(b"SYSB")

    async def test_finds_bundles_by_release_and_url(self, client: Client) -> None:
        await upload_bundle(client, make_bundle({"~/a.js": b"a"}), version="1.0")
        results = await get_json(client, f"{PROJECT}/artifact-lookup/?release=1.0&url=~/a.js")
        assert [r["resolved_with"] for r in results] == ["index"]
        assert await get_json(client, f"{PROJECT}/artifact-lookup/?release=2.0&url=~/a.js") == []

    async def test_falls_back_to_release_files(self, client: Client) -> None:
        await create_release(client, "1.0")
        uploaded = await (await upload(client, b"legacy", name="~/legacy.js")).json()
        (hit,) = await get_json(client, f"{PROJECT}/artifact-lookup/?release=1.0&url=legacy.js")
        assert hit["id"] == f"release_file/{uploaded['id']}"
        assert (hit["type"], hit["abs_path"], hit["resolved_with"]) == ("file", "~/legacy.js", "release-old")
        resp = await client.get(f"{PROJECT}/artifact-lookup/?download={hit['id']}", headers=bearer())
        assert await resp.read() == b"legacy"

    async def test_the_release_file_fallback_without_a_dist_finds_only_files_without_one(self, client: Client) -> None:
        await create_release(client, "1.0")
        plain = await (await upload(client, b"plain", name="~/app.js")).json()
        assert (await upload(client, b"dist", name="~/app.js", dist="web")).status == 201
        hits = await get_json(client, f"{PROJECT}/artifact-lookup/?release=1.0&url=/app")
        assert [h["id"] for h in hits] == [f"release_file/{plain['id']}"]

    async def test_the_release_file_fallback_filters_the_dist_before_its_ten_row_limit(self, client: Client) -> None:
        # get_legacy_releasefile_by_file_url filters dist_id in the query, then slices 10.
        await create_release(client, "1.0")
        for i in range(10):
            assert (await upload(client, b"x", name=f"~/app.{i}.js", dist="other")).status == 201
        wanted = await (await upload(client, b"y", name="~/app.js", dist="web")).json()
        hits = await get_json(client, f"{PROJECT}/artifact-lookup/?release=1.0&dist=web&url=app")
        assert [h["id"] for h in hits] == [f"release_file/{wanted['id']}"]
        others = await get_json(client, f"{PROJECT}/artifact-lookup/?release=1.0&dist=other&url=app")
        assert len(others) == 10 and wanted["id"] not in {h["id"].split("/")[1] for h in others}

    async def test_the_release_file_fallback_treats_an_unknown_dist_as_no_dist(self, client: Client) -> None:
        await create_release(client, "1.0")
        plain = await (await upload(client, b"plain", name="~/app.js")).json()
        assert (await upload(client, b"dist", name="~/app.js", dist="web")).status == 201
        hits = await get_json(client, f"{PROJECT}/artifact-lookup/?release=1.0&dist=nope&url=app")
        assert [h["id"] for h in hits] == [f"release_file/{plain['id']}"]

    async def test_nothing_found_and_bad_download_ids(self, client: Client) -> None:
        await create_release(client, "1.0")
        assert await get_json(client, f"{PROJECT}/artifact-lookup/?debug_id={DEBUG_ID}") == []
        resp = await client.get(f"{PROJECT}/artifact-lookup/?download=nonsense", headers=bearer())
        assert (resp.status, await resp.read()) == (404, b"")


class TestOrganizationAndDeploys:
    async def test_organization_details_have_sentrys_shape_and_list_its_projects(self, client: Client) -> None:
        await create_release(client, "1.0")
        body = await get_json(client, "/api/0/organizations/acme/")
        assert (body["slug"], body["name"], body["status"]) == ("acme", "acme", {"id": "active", "name": "active"})
        assert isinstance(body["id"], str)
        assert [p["slug"] for p in body["projects"]] == ["web"]

    async def test_org_token_may_read_its_organization(self, client: Client) -> None:
        from relserver import auth

        raw = auth.new_org_token(url="http://x", org="acme")
        await mint_token(client, scopes=auth.ORG_TOKEN_SCOPES, organization="acme", token=raw)
        await create_release(client, "1.0")
        assert (await get_json(client, "/api/0/organizations/acme/", token=raw))["slug"] == "acme"

    async def test_deploys_list_in_order_and_the_release_shows_their_count_and_the_latest_finished(
        self, client: Client
    ) -> None:
        await create_release(client, "1.0")
        url = "/api/0/organizations/acme/releases/1.0/deploys/"
        resp = await client.post(url, json={"environment": "production", "name": "first"}, headers=bearer())
        assert resp.status == 201
        deploy = await resp.json()
        assert list(deploy) == ["id", "environment", "dateStarted", "dateFinished", "name", "url"]
        assert (deploy["environment"], deploy["name"], deploy["dateStarted"]) == ("production", "first", None)
        await client.post(
            url, json={"environment": "staging", "dateFinished": "2020-01-01T00:00:00Z"}, headers=bearer()
        )
        assert [d["environment"] for d in await get_json(client, url)] == ["production", "staging"]
        # The release shows them as Sentry does: a count and the latest finished.
        release = await get_json(client, "/api/0/organizations/acme/releases/1.0/")
        assert (release["deployCount"], release["lastDeploy"]) == (2, deploy)

    @pytest.mark.parametrize(
        ("body", "errors"),
        [
            ({}, {"environment": ["This field is required."]}),
            ({"environment": "a/b"}, {"environment": ["Invalid value for environment"]}),
            ({"environment": "e" * 65}, {"environment": ["Ensure this field has no more than 64 characters."]}),
        ],
    )
    async def test_a_deploy_without_a_valid_environment_is_sentrys_400(
        self, client: Client, body: dict[str, Any], errors: dict[str, Any]
    ) -> None:
        await create_release(client, "1.0")
        resp = await client.post("/api/0/organizations/acme/releases/1.0/deploys/", json=body, headers=bearer())
        await assert_api_error(resp, 400, errors)

    async def test_deploy_to_unknown_release_is_404(self, client: Client) -> None:
        resp = await client.post(
            "/api/0/organizations/acme/releases/nope/deploys/", json={"environment": "p"}, headers=bearer()
        )
        await assert_api_error(resp, 404, {"detail": "The requested resource does not exist"})
