"""Release creation at organization and project scope (Sentry's release endpoints and serializer)."""

from __future__ import annotations

from typing import Any

import pytest

from relserver.config import Config
from relserver.keys import catalog_key

from .conftest import Client, ClientFactory, assert_api_error, bearer

ORG_RELEASES = "/api/0/organizations/acme/releases/"
# What Python's json (and so DRF's JSONParser) says about `{nope`.
PARSER_MESSAGE = "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
PROJECT_RELEASES = "/api/0/projects/acme/web/releases/"

RELEASE_KEYS = [
    "id",
    "version",
    "status",
    "shortVersion",
    "versionInfo",
    "ref",
    "url",
    "dateReleased",
    "dateCreated",
    "data",
    "newGroups",
    "owner",
    "commitCount",
    "lastCommit",
    "deployCount",
    "lastDeploy",
    "authors",
    "projects",
    "firstEvent",
    "lastEvent",
    "currentProjectMeta",
    "userAgent",
]


async def post(client: Client, url: str, body: Any) -> Any:
    return await client.post(url, json=body, headers=bearer())


class TestOrganizationCreate:
    async def test_new_release_is_201_with_sentrys_release_json(self, client: Client) -> None:
        resp = await post(client, ORG_RELEASES, {"version": "web@1.2.3+abc", "projects": ["web", "mobile"]})
        assert resp.status == 201
        assert resp.headers["Content-Type"] == "application/json"
        body = await resp.json()
        assert list(body) == RELEASE_KEYS
        assert isinstance(body["id"], int)
        assert body["version"] == body["shortVersion"] == "web@1.2.3+abc"
        assert body["status"] == "open"
        assert [(p["slug"], p["name"]) for p in body["projects"]] == [("web", "web"), ("mobile", "mobile")]
        assert set(body["projects"][0]) == {"id", "slug", "name", "newGroups", "platform", "platforms", "hasHealthData"}
        assert body["versionInfo"] == {
            "package": "web",
            "version": {
                "raw": "1.2.3+abc",
                "major": 1,
                "minor": 2,
                "patch": 3,
                "pre": None,
                "buildCode": "abc",
                "components": 3,
            },
            "description": "1.2.3 (abc)",
            "buildHash": None,
        }

    async def test_existing_release_with_nothing_new_is_208(self, client: Client) -> None:
        assert (await post(client, ORG_RELEASES, {"version": "1.0", "projects": ["web"]})).status == 201
        assert (await post(client, ORG_RELEASES, {"version": "1.0", "projects": ["web"]})).status == 208
        assert (await post(client, ORG_RELEASES, {"version": "1.0", "projects": []})).status == 208

    async def test_existing_release_newly_linked_is_201_and_keeps_its_values(self, client: Client) -> None:
        first = await (await post(client, ORG_RELEASES, {"version": "1.0", "projects": ["web"], "ref": "a"})).json()
        resp = await post(client, ORG_RELEASES, {"version": "1.0", "projects": ["mobile"], "ref": "b"})
        assert resp.status == 201
        body = await resp.json()
        assert body["id"] == first["id"]
        assert body["ref"] == "a"
        assert [p["slug"] for p in body["projects"]] == ["web", "mobile"]

    async def test_empty_project_list_is_accepted(self, client: Client) -> None:
        resp = await post(client, ORG_RELEASES, {"version": "1.0", "projects": []})
        assert resp.status == 201
        assert (await resp.json())["projects"] == []

    async def test_optional_fields_are_stored(self, client: Client) -> None:
        resp = await client.post(
            ORG_RELEASES,
            json={
                "version": "1.0",
                "projects": [],
                "ref": "abc",
                "url": "https://x",
                "dateReleased": "2024-05-01T12:00:00Z",
            },
            headers={**bearer(), "User-Agent": "sentry-cli/2.58.6"},
        )
        body = await resp.json()
        assert (body["ref"], body["url"], body["dateReleased"], body["userAgent"]) == (
            "abc",
            "https://x",
            "2024-05-01T12:00:00.000000Z",
            "sentry-cli/2.58.6",
        )

    async def test_form_encoded_body_is_accepted(self, client: Client) -> None:
        resp = await client.post(ORG_RELEASES, data={"version": "2.0", "projects": "web"}, headers=bearer())
        assert resp.status == 201
        assert [p["slug"] for p in (await resp.json())["projects"]] == ["web"]


class TestVersionRules:
    @pytest.mark.parametrize(
        ("body", "errors"),
        [
            ({"projects": []}, {"version": ["This field is required."]}),
            ({"version": "", "projects": []}, {"version": ["This field may not be blank."]}),
            ({"version": None, "projects": []}, {"version": ["This field may not be null."]}),
            ({"version": ["1"], "projects": []}, {"version": ["Not a valid string."]}),
            (
                {"version": "v" * 201, "projects": []},
                {"version": ["Ensure this field has no more than 200 characters."]},
            ),
            ({"version": "1.0"}, {"projects": ["This field is required."]}),
            ({"version": "1.0", "projects": "web"}, {"projects": ['Expected a list of items but got type "str".']}),
            ({}, {"version": ["This field is required."], "projects": ["This field is required."]}),
        ],
    )
    async def test_field_errors_are_drf_shaped(self, client: Client, body: Any, errors: dict[str, Any]) -> None:
        await assert_api_error(await post(client, ORG_RELEASES, body), 400, errors)

    @pytest.mark.parametrize(
        "version", ["a/b", "a\\b", "a\tb", "a\nb", "a\rb", "a\fb", "latest", "LaTeSt", ".", "..", " ", " .. "]
    )
    async def test_forbidden_versions_are_400(self, client: Client, version: str) -> None:
        resp = await post(client, ORG_RELEASES, {"version": version, "projects": []})
        await assert_api_error(resp, 400, {"version": [f"Release with name {version} is not allowed"]})

    @pytest.mark.parametrize("version", ["v" * 200, " 1.0 ", "latest-1", "1.0+build", "web@1.0.0+b.5#x?y%z&w=1"])
    async def test_allowed_versions_are_kept_verbatim(self, client: Client, version: str) -> None:
        resp = await post(client, ORG_RELEASES, {"version": version, "projects": []})
        assert resp.status == 201
        assert (await resp.json())["version"] == version

    async def test_numeric_version_becomes_a_string(self, client: Client) -> None:
        resp = await post(client, ORG_RELEASES, {"version": 12, "projects": []})
        assert (await resp.json())["version"] == "12"


class TestBodies:
    async def test_malformed_json_is_400_with_drfs_message(self, client: Client) -> None:
        resp = await client.post(ORG_RELEASES, data=b"{nope", headers={**bearer(), "Content-Type": "application/json"})
        await assert_api_error(
            resp,
            400,
            {"detail": "JSON parse error - " + PARSER_MESSAGE},
        )

    async def test_non_object_json_is_a_non_field_error(self, client: Client) -> None:
        resp = await post(client, ORG_RELEASES, ["1.0"])
        await assert_api_error(resp, 400, {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})

    async def test_unsupported_content_type_is_415(self, client: Client) -> None:
        resp = await client.post(ORG_RELEASES, data=b"1.0", headers={**bearer(), "Content-Type": "text/plain"})
        await assert_api_error(resp, 415, {"detail": 'Unsupported media type "text/plain" in request.'})

    async def test_oversize_json_body_is_413(self, make_client: ClientFactory, config: Config) -> None:
        client = await make_client(config.with_overrides(max_field_size=1000))
        resp = await post(client, ORG_RELEASES, {"version": "1.0", "projects": ["p"] * 1000})
        assert resp.status == 413
        assert resp.headers["Content-Type"] == "application/json"
        assert "1000" in (await resp.json())["detail"]


class TestProjectCreate:
    async def test_new_link_is_201_then_208(self, client: Client) -> None:
        resp = await post(client, PROJECT_RELEASES, {"version": "1.0", "dateStarted": "2024-01-01T00:00:00Z"})
        assert resp.status == 201
        assert [p["slug"] for p in (await resp.json())["projects"]] == ["web"]
        assert (await post(client, PROJECT_RELEASES, {"version": "1.0"})).status == 208

    async def test_existing_release_linked_to_another_project_is_201(self, client: Client) -> None:
        assert (await post(client, ORG_RELEASES, {"version": "1.0", "projects": ["mobile"]})).status == 201
        resp = await post(client, PROJECT_RELEASES, {"version": "1.0"})
        assert resp.status == 201
        assert [p["slug"] for p in (await resp.json())["projects"]] == ["mobile", "web"]

    async def test_version_rules_apply(self, client: Client) -> None:
        resp = await post(client, PROJECT_RELEASES, {"version": "latest"})
        await assert_api_error(resp, 400, {"version": ["Release with name latest is not allowed"]})


class TestProvisioning:
    async def test_unknown_projects_are_invalid_without_auto_create(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(auto_create=False))
        resp = await post(client, ORG_RELEASES, {"version": "1.0", "projects": ["web"]})
        await assert_api_error(resp, 404, {"detail": "The requested resource does not exist"})
        async with client.app[catalog_key].write() as tx:
            await tx.organizations.ensure("acme")
        resp = await post(client, ORG_RELEASES, {"version": "1.0", "projects": ["web"]})
        await assert_api_error(resp, 400, {"projects": ["Invalid project ids or slugs"]})
        resp = await post(client, PROJECT_RELEASES, {"version": "1.0"})
        await assert_api_error(resp, 404, {"detail": "The requested resource does not exist"})

    async def test_project_slugs_that_sentry_would_refuse_are_invalid(self, client: Client) -> None:
        for slug in ("Web", "has space", "123", "x" * 51):
            resp = await post(client, ORG_RELEASES, {"version": "1.0", "projects": [slug]})
            await assert_api_error(resp, 400, {"projects": ["Invalid project ids or slugs"]})

    async def test_projects_can_be_named_by_numeric_id(self, client: Client) -> None:
        body = await (await post(client, ORG_RELEASES, {"version": "1.0", "projects": ["web"]})).json()
        project_id = body["projects"][0]["id"]
        resp = await post(client, ORG_RELEASES, {"version": "2.0", "projects": [project_id]})
        assert resp.status == 201
        assert [p["slug"] for p in (await resp.json())["projects"]] == ["web"]

    async def test_invalid_org_slug_is_404_not_created(self, client: Client) -> None:
        resp = await post(client, "/api/0/organizations/-bad-/releases/", {"version": "1.0", "projects": []})
        await assert_api_error(resp, 404, {"detail": "The requested resource does not exist"})
