"""Releases after creation: list, detail, update, delete; the API index; unknown routes."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from relserver import auth
from relserver.config import Config
from relserver.keys import blobstore_key
from relserver.models import StoredBlob
from relserver.storage.blobs import BlobStore

from .conftest import (
    Client,
    assert_api_error,
    bearer,
    create_release,
    files_url,
    mint_token,
    sha1,
    stored_sha1s,
    upload,
)

ORG = "/api/0/organizations/acme"
PROJECT = "/api/0/projects/acme/web"
NOT_FOUND = {"detail": "The requested resource does not exist"}


async def versions(client: Client, url: str) -> list[str]:
    resp = await client.get(url, headers=bearer())
    assert resp.status == 200, await resp.text()
    return [r["version"] for r in await resp.json()]


class TestList:
    async def test_organization_list_is_newest_first(self, client: Client) -> None:
        for v in ["1.0", "2.0", "3.0"]:
            await create_release(client, v, projects=["web"] if v != "2.0" else ["mobile"])
        assert await versions(client, f"{ORG}/releases/") == ["3.0", "2.0", "1.0"]

    async def test_project_list_has_only_that_projects_releases(self, client: Client) -> None:
        for v in ["1.0", "2.0", "3.0"]:
            await create_release(client, v, projects=["web"] if v != "2.0" else ["mobile"])
        assert await versions(client, f"{PROJECT}/releases/") == ["3.0", "1.0"]

    async def test_project_list_orders_by_release_date_then_creation(self, client: Client) -> None:
        for v in ["1.0", "2.0", "3.0"]:
            await create_release(client, v)
        await client.put(f"{ORG}/releases/1.0/", json={"dateReleased": "2099-01-01T00:00:00Z"}, headers=bearer())
        assert await versions(client, f"{PROJECT}/releases/") == ["1.0", "3.0", "2.0"]

    async def test_query_is_a_case_insensitive_substring(self, client: Client) -> None:
        for v in ["web@1.0", "WEB@2.0", "api@1.0", "a_b", "a%b"]:
            await create_release(client, v)
        assert await versions(client, f"{ORG}/releases/?query=web") == ["WEB@2.0", "web@1.0"]
        assert await versions(client, f"{ORG}/releases/?query=1.0") == ["api@1.0", "web@1.0"]
        # LIKE wildcards in the query are literal characters.
        assert await versions(client, f"{ORG}/releases/?query=_") == ["a_b"]
        assert await versions(client, f"{ORG}/releases/?query=%25") == ["a%b"]

    async def test_archived_releases_need_the_status_filter(self, client: Client) -> None:
        await create_release(client, "1.0")
        await create_release(client, "2.0")
        await client.put(f"{ORG}/releases/1.0/", json={"status": "archived"}, headers=bearer())
        assert await versions(client, f"{ORG}/releases/") == ["2.0"]
        assert await versions(client, f"{ORG}/releases/?status=archived") == ["1.0"]
        assert await versions(client, f"{PROJECT}/releases/") == ["2.0"]
        resp = await client.get(f"{ORG}/releases/?status=gone", headers=bearer())
        await assert_api_error(resp, 400, {"detail": "invalid value for status"})

    async def test_release_lists_paginate_with_link_headers(self, client: Client) -> None:
        for i in range(5):
            await create_release(client, f"v{i}")
        resp = await client.get(f"{ORG}/releases/?per_page=2", headers=bearer())
        assert [r["version"] for r in await resp.json()] == ["v4", "v3"]
        assert 'rel="next"; results="true"; cursor="2:1:0"' in resp.headers["Link"]
        resp = await client.get(f"{ORG}/releases/?per_page=2&cursor=2:2:0", headers=bearer())
        assert [r["version"] for r in await resp.json()] == ["v0"]
        assert 'rel="next"; results="false"; cursor="2:3:0"' in resp.headers["Link"]


class TestDetail:
    @pytest.mark.parametrize("scope", [ORG, PROJECT])
    async def test_detail_at_both_scopes(self, client: Client, scope: str) -> None:
        created = await create_release(client, "1.0")
        resp = await client.get(f"{scope}/releases/1.0/", headers=bearer())
        assert await resp.json() == created

    async def test_unknown_or_unlinked_release_is_404(self, client: Client) -> None:
        await create_release(client, "1.0", projects=["mobile"])
        await assert_api_error(await client.get(f"{ORG}/releases/nope/", headers=bearer()), 404, NOT_FOUND)
        await assert_api_error(await client.get(f"{PROJECT}/releases/1.0/", headers=bearer()), 404, NOT_FOUND)

    async def test_versions_are_decoded_as_one_path_segment(self, client: Client) -> None:
        await create_release(client, "web@1.0.0+b.5#x?y%z&w=1")
        resp = await client.get(f"{ORG}/releases/web@1.0.0%2Bb.5%23x%3Fy%25z&w=1/", headers=bearer())
        assert (await resp.json())["version"] == "web@1.0.0+b.5#x?y%z&w=1"


class TestUpdate:
    async def test_put_sets_ref_url_date_and_status(self, client: Client) -> None:
        await create_release(client, "1.0")
        body = {
            "ref": "abc",
            "url": "https://example.com",
            "dateReleased": "2024-05-01T12:00:00Z",
            "status": "archived",
        }
        resp = await client.put(f"{PROJECT}/releases/1.0/", json=body, headers=bearer())
        assert resp.status == 200
        release = await resp.json()
        assert (release["ref"], release["url"], release["dateReleased"], release["status"]) == (
            "abc",
            "https://example.com",
            "2024-05-01T12:00:00.000000Z",
            "archived",
        )

    async def test_status_open_does_not_unarchive(self, client: Client) -> None:
        # Sentry applies only truthy fields and "open" is status 0 (organization_release_details.py).
        await create_release(client, "1.0")
        await client.put(f"{ORG}/releases/1.0/", json={"status": "archived"}, headers=bearer())
        resp = await client.put(f"{ORG}/releases/1.0/", json={"status": "open"}, headers=bearer())
        assert (await resp.json())["status"] == "archived"

    async def test_invalid_status_and_date_are_field_errors(self, client: Client) -> None:
        await create_release(client, "1.0")
        resp = await client.put(
            f"{ORG}/releases/1.0/", json={"status": "gone", "dateReleased": "soon"}, headers=bearer()
        )
        await assert_api_error(
            resp,
            400,
            {
                "status": ["Invalid status gone"],
                "dateReleased": [
                    "Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ],
            },
        )

    async def test_organization_put_links_projects(self, client: Client) -> None:
        await create_release(client, "1.0", projects=["web"])
        resp = await client.put(
            f"{ORG}/releases/1.0/",
            json={"projects": ["mobile"], "dateReleased": "2024-05-01T00:00:00Z"},
            headers=bearer(),
        )
        assert [p["slug"] for p in (await resp.json())["projects"]] == ["web", "mobile"]

    async def test_put_on_an_unknown_release_is_404(self, client: Client) -> None:
        resp = await client.put(f"{ORG}/releases/nope/", json={"ref": "x"}, headers=bearer())
        await assert_api_error(resp, 404, NOT_FOUND)


class TestDelete:
    @pytest.mark.parametrize("scope", [ORG, PROJECT])
    async def test_delete_removes_the_release_its_files_and_their_blobs(
        self, client: Client, config: Config, scope: str
    ) -> None:
        await create_release(client, "1.0")
        await create_release(client, "2.0")
        for i in range(3):
            await upload(client, f"{i}".encode(), name=f"~/{i}.js")
        shared = await (await upload(client, b"0", name="~/shared.js", version="2.0")).json()
        resp = await client.delete(f"{scope}/releases/1.0/", headers=bearer())
        assert (resp.status, await resp.read()) == (204, b"")
        await assert_api_error(await client.get(f"{ORG}/releases/1.0/", headers=bearer()), 404, NOT_FOUND)
        await assert_api_error(await client.get(files_url("1.0"), headers=bearer()), 404, NOT_FOUND)
        # The blob another release still uses stays; the others are gone.
        assert stored_sha1s(config) == [shared["sha1"]]
        # The version can be created afresh, empty.
        await create_release(client, "1.0")
        assert await (await client.get(files_url("1.0"), headers=bearer())).json() == []

    async def test_delete_needs_the_delete_scopes(self, client: Client) -> None:
        await create_release(client, "1.0")
        token = await mint_token(client, scopes=["project:write"])
        resp = await client.delete(f"{ORG}/releases/1.0/", headers=bearer(token))
        await assert_api_error(resp, 403, {"detail": "You do not have permission to perform this action."})

    async def test_concurrent_deletes_and_uploads_keep_rows_and_blobs_consistent(
        self, client: Client, config: Config
    ) -> None:
        await create_release(client, "1.0")
        await create_release(client, "2.0")
        ops: list[Any] = []
        for i in range(20):
            ops.append(upload(client, b"same bytes", name=f"~/{i}.js", version="1.0" if i % 2 else "2.0"))
            if i % 5 == 4:
                ops.append(client.delete(f"{ORG}/releases/1.0/", headers=bearer()))
        await asyncio.gather(*ops)
        listed = await (await client.get(files_url("2.0"), headers=bearer())).json()
        assert listed, "release 2.0 kept its files"
        assert set(stored_sha1s(config)) == {f["sha1"] for f in listed}

    async def test_an_upload_whose_release_is_deleted_meanwhile_is_404_and_spares_its_batch(
        self, client: Client, config: Config, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await create_release(client, "1.0")
        await create_release(client, "2.0")
        gate = threading.Event()
        engine = type(client.app[blobstore_key])
        real_store_bytes = engine.put_small
        # On disk a blob is written inside its batch's transaction: holding the first upload's
        # write holds the writer, and the doomed upload queues behind it. On S3 each upload
        # stores its object before it joins a batch: the doomed upload's own write is held.
        held = b"first" if engine.content_addressed else b"doomed"

        def store_bytes(self: BlobStore, data: bytes) -> StoredBlob:
            if data == held:
                gate.wait(10)
            return real_store_bytes(self, data)

        monkeypatch.setattr(engine, "put_small", store_bytes)
        first = asyncio.ensure_future(upload(client, b"first", name="~/first.js", version="2.0"))
        await asyncio.sleep(0.3)
        # Looked up while 1.0 still exists; committed in the batch after the delete.
        doomed = asyncio.ensure_future(upload(client, b"doomed", name="~/doomed.js", version="1.0"))
        await asyncio.sleep(0.3)
        deleted = asyncio.ensure_future(client.delete(f"{ORG}/releases/1.0/", headers=bearer()))
        await asyncio.sleep(0.3)
        survivor = asyncio.ensure_future(upload(client, b"survivor", name="~/survivor.js", version="2.0"))
        await asyncio.sleep(0.3)
        gate.set()
        assert (await first).status == 201
        assert (await deleted).status == 204
        await assert_api_error(await doomed, 404, {"detail": "The requested resource does not exist"})
        assert (await survivor).status == 201
        listed = await (await client.get(files_url("2.0"), headers=bearer())).json()
        assert sorted(f["name"] for f in listed) == ["~/first.js", "~/survivor.js"]
        assert set(stored_sha1s(config)) == {sha1(b"first"), sha1(b"survivor")}


class TestIndex:
    async def test_no_credentials_answers_nulls(self, client: Client) -> None:
        resp = await client.get("/api/0/")
        assert await resp.json() == {"version": "0", "auth": None, "user": None}

    async def test_bad_credentials_are_still_401(self, client: Client) -> None:
        await assert_api_error(await client.get("/api/0/", headers=bearer("nope")), 401, {"detail": "Invalid token"})

    async def test_user_token_shows_its_scopes_and_a_user(self, client: Client) -> None:
        token = await mint_token(client, scopes=["project:releases", "org:read"])
        body = await (await client.get("/api/0/", headers=bearer(token))).json()
        assert body["version"] == "0"
        assert body["auth"] == {"scopes": ["org:read", "project:releases"]}
        assert set(body["user"]) >= {"id", "email"}

    async def test_org_token_has_no_user(self, client: Client) -> None:
        raw = auth.new_org_token(url="http://x", org="acme")
        await mint_token(client, scopes=auth.ORG_TOKEN_SCOPES, organization="acme", token=raw)
        body = await (await client.get("/api/0/", headers=bearer(raw))).json()
        assert body == {"version": "0", "auth": {"scopes": ["org:ci"]}, "user": None}


class TestUnknownRoutes:
    async def test_missing_trailing_slash_gets_sentrys_hint(self, client: Client) -> None:
        resp = await client.get(f"{ORG}/releases", headers={"Content-Type": "application/json"})
        await assert_api_error(
            resp, 404, {"info": f"Route not found, did you forget a trailing slash? try: {ORG}/releases/"}
        )
        resp = await client.get(f"{ORG}/releases")
        assert resp.status == 404
        assert resp.headers["Content-Type"] == "text/plain"
        suggestion = f"try: {ORG}/releases/"
        assert await resp.text() == (
            f"Route not found, did you forget a trailing slash?\n\n{suggestion}\n{' ' * (len(suggestion) - 1)}^\n"
        )

    async def test_unknown_route_with_a_slash_is_a_bare_404(self, client: Client) -> None:
        resp = await client.get("/api/0/not-a-thing/", headers=bearer())
        assert (resp.status, await resp.read()) == (404, b"")
        assert "Content-Type" not in resp.headers

    async def test_wrong_method_is_405_naming_the_allowed_ones(self, client: Client) -> None:
        resp = await client.patch(f"{ORG}/releases/", headers=bearer())
        await assert_api_error(resp, 405, {"detail": 'Method "PATCH" not allowed.'})
        assert resp.headers["Allow"] == "GET, HEAD, POST"

    @pytest.mark.parametrize("token", [None, "not-a-token"])
    async def test_wrong_method_without_valid_credentials_is_401_first(self, client: Client, token: str | None) -> None:
        # Sentry authenticates before it looks for the method's handler (api/base.py dispatch).
        headers = bearer(token) if token else {}
        resp = await client.request("TRACE", f"{ORG}/releases/", headers=headers)
        detail = "Invalid token" if token else "Authentication credentials were not provided."
        await assert_api_error(resp, 401, {"detail": detail})
