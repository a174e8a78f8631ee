"""Commits on releases as Sentry keeps them: commits/refs/headCommits on create and update,
repositories, a release's commits and files, and the previous release with commits."""

from __future__ import annotations

from typing import Any

from .conftest import Client, assert_api_error, bearer, create_release

ORG = "/api/0/organizations/acme"
PROJECT = "/api/0/projects/acme/web"
SHA_A = "a" * 40
SHA_B = "b" * 40
SHA_C = "c" * 40


def commit(sha: str, **extra: Any) -> dict[str, Any]:
    return {"id": sha, "repository": "acme/app", **extra}


async def post_release(client: Client, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    resp = await client.post(f"{ORG}/releases/", json={"projects": ["web"], **body}, headers=bearer())
    assert resp.status == status, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def put_release(client: Client, version: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    resp = await client.put(f"{ORG}/releases/{version}/", json=body, headers=bearer())
    assert resp.status == status, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def get_json(client: Client, url: str) -> Any:
    resp = await client.get(url, headers=bearer())
    assert resp.status == 200, await resp.text()
    return await resp.json()


class TestStoredCommits:
    async def test_commits_on_create_are_stored_with_repository_author_and_files(self, client: Client) -> None:
        body = await post_release(
            client,
            {
                "version": "1.0",
                "commits": [
                    commit(
                        SHA_A,
                        message="  Fix the thing\n",
                        author_name="Ada Lovelace",
                        author_email="ada@example.com",
                        timestamp="2024-05-01T10:00:00Z",
                        patch_set=[{"path": "src/a.js", "type": "M"}, {"path": "src/b.js", "type": "A"}],
                    )
                ],
            },
        )
        assert body["commitCount"] == 1
        assert body["authors"] == [{"name": "Ada Lovelace", "email": "ada@example.com"}]
        last = body["lastCommit"]
        # DRF's CharField trims whitespace.
        assert (last["id"], last["message"], last["dateCreated"]) == (
            SHA_A,
            "Fix the thing",
            "2024-05-01T10:00:00.000000Z",
        )
        assert (last["pullRequest"], last["suspectCommitType"]) == (None, "")
        assert last["author"] == {"name": "Ada Lovelace", "email": "ada@example.com"}
        assert last["repository"]["name"] == "acme/app"
        assert last["repository"]["provider"] == {"id": "unknown", "name": "Unknown Provider"}
        files = await get_json(client, f"{ORG}/releases/1.0/commitfiles/")
        assert [(f["filename"], f["type"], f["repoName"], f["commitMessage"]) for f in files] == [
            ("src/a.js", "M", "acme/app", "Fix the thing"),
            ("src/b.js", "A", "acme/app", "Fix the thing"),
        ]
        assert set(files[0]) == {"id", "orgId", "author", "commitMessage", "filename", "type", "repoName"}
        assert files[0]["author"] == {"name": "Ada Lovelace", "email": "ada@example.com"}

    async def test_commits_are_newest_first_and_skipsentry_ones_are_dropped(self, client: Client) -> None:
        await post_release(
            client,
            {
                "version": "1.0",
                "commits": [
                    commit(SHA_A, timestamp="2024-05-01T10:00:00Z"),
                    commit(SHA_B, timestamp="2024-05-03T10:00:00Z"),
                    commit(SHA_C, timestamp="2024-05-02T10:00:00Z", message="wip #skipsentry"),
                ],
            },
        )
        listed = await get_json(client, f"{ORG}/releases/1.0/commits/")
        assert [c["id"] for c in listed] == [SHA_B, SHA_A]
        detail = await get_json(client, f"{ORG}/releases/1.0/")
        assert (detail["commitCount"], detail["lastCommit"]["id"]) == (2, SHA_B)
        # The project scope lists them too.
        assert [c["id"] for c in await get_json(client, f"{PROJECT}/releases/1.0/commits/")] == [SHA_B, SHA_A]

    async def test_an_author_without_email_gets_a_localhost_one_and_no_repository_the_org_default(
        self, client: Client
    ) -> None:
        body = await post_release(client, {"version": "1.0", "commits": [{"id": SHA_A, "author_name": "Grace H."}]})
        assert body["authors"] == [{"name": "Grace H.", "email": "graceh.@localhost"}]
        org = await get_json(client, f"{ORG}/")
        assert [r["name"] for r in await get_json(client, f"{ORG}/repos/")] == [f"organization-{org['id']}"]

    async def test_set_commits_again_replaces_the_release_commit_list(self, client: Client) -> None:
        await post_release(client, {"version": "1.0", "commits": [commit(SHA_A), commit(SHA_B)]})
        updated = await put_release(client, "1.0", {"commits": [commit(SHA_C)]})
        assert (updated["commitCount"], updated["lastCommit"]["id"]) == (1, SHA_C)
        assert [c["id"] for c in await get_json(client, f"{ORG}/releases/1.0/commits/")] == [SHA_C]

    async def test_an_empty_refs_list_on_update_clears_the_commits(self, client: Client) -> None:
        await post_release(client, {"version": "1.0", "commits": [commit(SHA_A)]})
        cleared = await put_release(client, "1.0", {"refs": []})
        assert (cleared["commitCount"], cleared["lastCommit"], cleared["authors"]) == (0, None, [])
        assert await get_json(client, f"{ORG}/releases/1.0/commits/") == []

    async def test_commit_lists_paginate_with_link_headers(self, client: Client) -> None:
        commits = [commit(f"{i:040x}", timestamp=f"2024-05-{i + 1:02}T00:00:00Z") for i in range(3)]
        await post_release(client, {"version": "1.0", "commits": commits})
        resp = await client.get(f"{ORG}/releases/1.0/commits/?per_page=2", headers=bearer())
        assert [c["id"] for c in await resp.json()] == [f"{2:040x}", f"{1:040x}"]
        assert 'rel="next"; results="true"' in resp.headers["Link"]


class TestRefs:
    async def test_refs_set_the_head_commit_of_a_known_repository(self, client: Client) -> None:
        await post_release(client, {"version": "1.0", "commits": [commit(SHA_A)]})
        await post_release(client, {"version": "2.0"})
        await put_release(client, "2.0", {"refs": [{"repository": "acme/app", "commit": f"{SHA_A}..{SHA_B}"}]})
        # A ref stores its commit but is not a commit list: fetching needs a provider.
        detail = await get_json(client, f"{ORG}/releases/2.0/")
        assert detail["commitCount"] == 0

    async def test_refs_naming_unknown_repositories_are_400_after_the_commits_are_stored(self, client: Client) -> None:
        resp = await client.post(
            f"{ORG}/releases/",
            json={
                "version": "1.0",
                "projects": ["web"],
                "commits": [commit(SHA_A)],
                "refs": [{"repository": "zeta/x", "commit": SHA_B}, {"repository": "beta/y", "commit": SHA_B}],
            },
            headers=bearer(),
        )
        await assert_api_error(resp, 400, {"refs": ["Invalid repository names: beta/y,zeta/x"]})
        assert [c["id"] for c in await get_json(client, f"{ORG}/releases/1.0/commits/")] == [SHA_A]

    async def test_deprecated_head_commits_are_refs(self, client: Client) -> None:
        resp = await client.post(
            f"{ORG}/releases/",
            json={"version": "1.0", "projects": ["web"], "headCommits": [{"repository": "nope/x", "currentId": SHA_A}]},
            headers=bearer(),
        )
        await assert_api_error(resp, 400, {"refs": ["Invalid repository names: nope/x"]})

    async def test_project_scope_ignores_refs_as_its_serializer_has_none(self, client: Client) -> None:
        resp = await client.post(
            f"{PROJECT}/releases/",
            json={"version": "1.0", "refs": [{"repository": "nope/x", "commit": SHA_A}], "commits": [commit(SHA_B)]},
            headers=bearer(),
        )
        assert resp.status == 201, await resp.text()
        assert (await resp.json())["commitCount"] == 1


# Each body's commit fields and the 400 Sentry's serializers answer for them.
INVALID_COMMIT_FIELDS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"commits": [None]}, {"commits": {"0": ["This field may not be null."]}}),
    (
        {"commits": [{"id": "x", "patch_set": [None, {"path": "a", "type": "M"}]}]},
        {"commits": {"0": {"patch_set": {"0": ["This field may not be null."]}}}},
    ),
    (
        {"refs": [None, 3]},
        {
            "refs": {
                "0": ["This field may not be null."],
                "1": {"non_field_errors": ["Invalid data. Expected a dictionary, but got int."]},
            }
        },
    ),
    ({"commits": None}, {"commits": ["This field may not be null."]}),
    ({"commits": {"id": SHA_A}}, {"commits": ['Expected a list of items but got type "dict".']}),
    (
        {"commits": ["x"]},
        {"commits": {"0": {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}}},
    ),
    ({"commits": [{}]}, {"commits": {"0": {"id": ["This field is required."]}}}),
    (
        {"commits": [{"id": "x" * 65}]},
        {"commits": {"0": {"id": ["Ensure this field has no more than 64 characters."]}}},
    ),
    (
        {"commits": [{"id": "x", "repository": "r" * 65}]},
        {"commits": {"0": {"repository": ["Ensure this field has no more than 64 characters."]}}},
    ),
    (
        {"commits": [{"id": "x", "author_email": "e" * 201}]},
        {"commits": {"0": {"author_email": ["Ensure this field has no more than 200 characters."]}}},
    ),
    (
        {"commits": [{"id": "x", "timestamp": "yesterday"}]},
        {
            "commits": {
                "0": {
                    "timestamp": [
                        "Datetime has wrong format. Use one of these formats instead:"
                        " YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                    ]
                }
            }
        },
    ),
    (
        {"commits": [{"id": "x", "patch_set": [{"path": "a", "type": "X"}]}]},
        {"commits": {"0": {"patch_set": {"0": {"type": ["Commit patch_set type X is not supported."]}}}}},
    ),
    (
        {"commits": [{"id": "x", "patch_set": [{"path": "p" * 511, "type": "M"}]}]},
        {"commits": {"0": {"patch_set": {"0": {"path": ["Ensure this field has no more than 510 characters."]}}}}},
    ),
    (
        {"commits": [{"id": "x", "patch_set": "a.js"}]},
        {"commits": {"0": {"patch_set": ['Expected a list of items but got type "str".']}}},
    ),
    ({"refs": None}, {"refs": ["This field may not be null."]}),
    ({"refs": [{"commit": SHA_A}]}, {"refs": {"0": {"repository": ["This field is required."]}}}),
    (
        {"refs": [{"repository": "r", "commit": "x" * 65}]},
        {"refs": {"0": {"commit": ["Commit too long - max is 64 chars"]}}},
    ),
    (
        {"refs": [{"repository": "r", "commit": f"{'x' * 65}..{SHA_A}"}]},
        {"refs": {"0": {"commit": ["Start or end commit too long - max is 64 chars each"]}}},
    ),
    (
        {"refs": [{"repository": "r", "commit": f"..{SHA_A}"}]},
        {"refs": {"0": {"commit": ["Commit cannot begin or end with .."]}}},
    ),
    (
        {"refs": [{"repository": "r" * 201, "commit": SHA_A}]},
        {"refs": {"0": {"repository": ["Ensure this field has no more than 200 characters."]}}},
    ),
    ({"headCommits": [{"repository": "r"}]}, {"headCommits": {"0": {"currentId": ["This field is required."]}}}),
]


async def test_commit_fields_are_validated_with_sentrys_400_bodies(client: Client) -> None:
    """On create and on update, one case after another (one server: cheap on every engine)."""
    await create_release(client, "1.0")
    for extra, errors in INVALID_COMMIT_FIELDS:
        created = await client.post(
            f"{ORG}/releases/", json={"version": "2.0", "projects": ["web"], **extra}, headers=bearer()
        )
        await assert_api_error(created, 400, errors)
        updated = await client.put(f"{ORG}/releases/1.0/", json=extra, headers=bearer())
        await assert_api_error(updated, 400, errors)
    assert (await client.get(f"{ORG}/releases/2.0/", headers=bearer())).status == 404


class TestRepositories:
    async def test_repositories_are_listed_by_name_in_sentrys_shape(self, client: Client) -> None:
        await post_release(
            client, {"version": "1.0", "commits": [commit(SHA_A), {"id": SHA_B, "repository": "acme/api"}]}
        )
        repos = await get_json(client, f"{ORG}/repos/")
        assert [r["name"] for r in repos] == ["acme/api", "acme/app"]
        assert set(repos[0]) == {
            "id",
            "name",
            "url",
            "provider",
            "status",
            "dateCreated",
            "integrationId",
            "externalSlug",
            "externalId",
        }
        assert (repos[0]["status"], repos[0]["url"]) == ("active", None)
        assert [r["name"] for r in await get_json(client, f"{ORG}/repos/?query=API")] == ["acme/api"]
        assert await get_json(client, f"{ORG}/repos/?status=deleted") == []
        assert await get_json(client, f"{ORG}/repos/?status=bogus") == []

    async def test_a_repository_is_created_once_per_name(self, client: Client) -> None:
        await post_release(client, {"version": "1.0", "commits": [commit(SHA_A)]})
        await post_release(client, {"version": "2.0", "commits": [commit(SHA_B)]})
        assert [r["name"] for r in await get_json(client, f"{ORG}/repos/")] == ["acme/app"]


class TestPreviousWithCommits:
    async def test_previous_with_commits_is_the_latest_release_with_commits_up_to_this_one(
        self, client: Client
    ) -> None:
        await post_release(client, {"version": "1.0", "commits": [commit(SHA_A)]})
        await post_release(client, {"version": "2.0"})
        found = await get_json(client, f"{ORG}/releases/2.0/previous-with-commits/")
        assert (found["version"], found["lastCommit"]["id"]) == ("1.0", SHA_A)
        # The release itself counts once it has commits.
        await put_release(client, "2.0", {"commits": [commit(SHA_B)]})
        found = await get_json(client, f"{ORG}/releases/2.0/previous-with-commits/")
        assert found["version"] == "2.0"

    async def test_no_release_with_commits_answers_an_empty_object(self, client: Client) -> None:
        await create_release(client, "1.0")
        assert await get_json(client, f"{ORG}/releases/1.0/previous-with-commits/") == {}

    async def test_releases_of_other_projects_do_not_count(self, client: Client) -> None:
        await post_release(client, {"version": "1.0", "projects": ["mobile"], "commits": [commit(SHA_A)]})
        await create_release(client, "2.0")
        assert await get_json(client, f"{ORG}/releases/2.0/previous-with-commits/") == {}

    async def test_unknown_release_is_404(self, client: Client) -> None:
        resp = await client.get(f"{ORG}/releases/nope/previous-with-commits/", headers=bearer())
        await assert_api_error(resp, 404, {"detail": "The requested resource does not exist"})
