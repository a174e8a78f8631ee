"""The release list as Sentry answers it: the release search grammar, semver and build
ordering, status, projects, environments, date ranges, health and adoption fields; and the
release details' currentProjectMeta."""

from __future__ import annotations

from typing import Any

import pytest

from relserver import services
from relserver.models import SemverColumns
from relserver.sentry import InvalidSearchQuery, release_conditions, semver_columns, version_info
from relserver.sentry.release_search import SearchFilter, parse_search_query
from relserver.services import Backend

from .conftest import Client, assert_api_error, bearer, create_release

ORG = "/api/0/organizations/acme"
PROJECT = "/api/0/projects/acme/web"


async def versions(client: Client, query: str) -> list[str]:
    resp = await client.get(f"{ORG}/releases/?{query}", headers=bearer())
    assert resp.status == 200, await resp.text()
    return [r["version"] for r in await resp.json()]


async def get_json(client: Client, url: str) -> Any:
    resp = await client.get(url, headers=bearer())
    assert resp.status == 200, await resp.text()
    return await resp.json()


class TestGrammar:
    def test_filters_operators_negation_lists_and_free_text(self) -> None:
        assert parse_search_query('release.version:>=1.2.3 !release:"a b" release:[x, y] web free') == [
            SearchFilter("release.version", ">=", "1.2.3"),
            SearchFilter("release", "!=", "a b"),
            SearchFilter("release", "IN", ("x", "y")),
            SearchFilter("release_free_text", "=", "web free"),
        ]

    def test_unknown_keys_are_sentrys_invalid_key_error(self) -> None:
        with pytest.raises(InvalidSearchQuery, match=r"^Invalid key for this search: bad_key$"):
            parse_search_query("bad_key:>1.2.3")

    def test_boolean_operators_are_refused(self) -> None:
        with pytest.raises(InvalidSearchQuery, match="Boolean statements"):
            release_conditions("a OR b")

    def test_semver_values_that_are_not_versions_are_refused(self) -> None:
        with pytest.raises(InvalidSearchQuery, match="Invalid format of semantic version"):
            release_conditions("release.version:abc")
        with pytest.raises(InvalidSearchQuery, match="Invalid operation 'IN'"):
            release_conditions("release.version:[1.0, 2.0]")


class TestSemverParsing:
    def test_package_version_and_build_become_sentrys_semver_columns(self) -> None:
        assert semver_columns("web@1.2.3.4-beta.1+42") == SemverColumns(
            package="web",
            major=1,
            minor=2,
            patch=3,
            revision=4,
            prerelease="beta.1",
            build_code="42",
            build_number=42,
        )
        assert semver_columns("web@2") == SemverColumns(
            package="web", major=2, minor=0, patch=0, revision=0, prerelease="", build_code=None, build_number=None
        )

    def test_versions_without_a_package_or_semver_have_no_semver_columns(self) -> None:
        for version in ("1.2.3", "web@abc", "web@" + "a" * 40, f"web@{2**63}.0.0"):
            assert semver_columns(version) == SemverColumns(), version

    def test_version_info_counts_a_fourth_component(self) -> None:
        info = version_info("web@1.2.3.4")
        assert info is not None
        assert info["version"]["components"] == 4


@pytest.fixture
async def semver_releases(client: Client) -> None:
    for version in ["web@1.0.0", "web@2.0.0-rc.1", "web@2.0.0+15", "web@1.10.0+9", "api@3.0.0", "plain"]:
        await create_release(client, version)


# A query over the `semver_releases` and what the list answers, newest created first.
SEARCHES: list[tuple[str, list[str]]] = [
    # A build number no bigint holds is compared as a build code.
    ("release.build:99999999999999999999", []),
    ("release.version:>1.5.0", ["api@3.0.0", "web@1.10.0+9", "web@2.0.0+15", "web@2.0.0-rc.1"]),
    ("release.version:<=1.10.0", ["web@1.10.0+9", "web@1.0.0"]),
    ("release.version:>=web@2.0.0", ["web@2.0.0+15"]),
    ("release.version:2.0.0-rc.1", ["web@2.0.0-rc.1"]),
    ("release.version:2.*", ["web@2.0.0+15", "web@2.0.0-rc.1"]),
    ("!release.version:2.*", ["plain", "api@3.0.0", "web@1.10.0+9", "web@1.0.0"]),
    ("release.package:api", ["api@3.0.0"]),
    ("!release.package:web", ["plain", "api@3.0.0"]),
    ("release.build:>10", ["web@2.0.0+15"]),
    ("release.build:9", ["web@1.10.0+9"]),
    ("release:plain", ["plain"]),
    ("release:web@1*", ["web@1.10.0+9", "web@1.0.0"]),
    ("release:*rc.1", ["web@2.0.0-rc.1"]),
    ("release:*10*", ["web@1.10.0+9"]),
    ("release:[plain, api@3.0.0]", ["plain", "api@3.0.0"]),
    ("!release:plain release.package:api", ["api@3.0.0"]),
    ("release:latest", []),
    ("release.stage:adopted", []),
    ("WEB@2", ["web@2.0.0+15", "web@2.0.0-rc.1"]),
]


INVALID_QUERIES: list[tuple[str, str]] = [
    # No 64-bit semver column holds it: a 400, never a database error.
    (
        "release.version:>99999999999999999999",
        'Invalid format of semantic version. For searching non-semver releases, use "release:" instead.',
    ),
    ("bad:1", "Invalid key for this search: bad"),
    (
        "release.version:abc",
        'Invalid format of semantic version. For searching non-semver releases, use "release:" instead.',
    ),
    ("release.stage:bogus", "Unsupported release.stage value."),
    ("a AND b", 'Boolean statements containing "OR" or "AND" are not supported in this search'),
]


class TestQuery:
    async def test_release_search_filters_as_sentry_does(self, client: Client, semver_releases: None) -> None:
        for query, expected in SEARCHES:
            assert await versions(client, f"query={query.replace('+', '%2B')}") == expected, query

    async def test_free_text_is_the_whole_query_as_a_substring(self, client: Client) -> None:
        await create_release(client, "1.0+abc")
        # "1.0 (abc)" also finds "1.0+abc" (organization_releases.py _release_suffix).
        assert await versions(client, "query=1.0 (abc)") == ["1.0+abc"]
        assert await versions(client, "query=1.0 release:x") == []

    async def test_finalized_keeps_released_or_unreleased_ones(self, client: Client) -> None:
        await create_release(client, "1.0")
        await create_release(client, "2.0")
        await client.put(f"{ORG}/releases/1.0/", json={"dateReleased": "2024-01-01T00:00:00Z"}, headers=bearer())
        assert await versions(client, "query=finalized:true") == ["1.0"]
        assert await versions(client, "query=finalized:false") == ["2.0"]

    async def test_an_invalid_query_is_a_400_detail(self, client: Client) -> None:
        await create_release(client, "1.0")
        for query, detail in INVALID_QUERIES:
            resp = await client.get(f"{ORG}/releases/?query={query}", headers=bearer())
            await assert_api_error(resp, 400, {"detail": detail})

    async def test_numbers_and_dates_no_column_holds_are_a_400_or_nothing_never_a_5xx(self, client: Client) -> None:
        await create_release(client, "app@1.0.0+7")
        huge = "9" * 5000  # more digits than int() takes
        for params in (
            f"query=release.version:>{huge}",
            "query=release.created:>0001-01-01T00:00:00%2B01:00",
            f"statsPeriod={huge}d",
            "start=0001-01-01T00:00:00%2B01:00&end=2020-01-01T00:00:00Z",
        ):
            resp = await client.get(f"{ORG}/releases/?{params}", headers=bearer())
            assert resp.status == 400, (params, await resp.text())
        # A build too long for a 64-bit number is a build code: it matches nothing.
        assert await versions(client, f"query=release.build:>{huge[:30]}") == []


class TestSort:
    async def test_sort_semver_orders_by_version_then_non_semver_last(
        self, client: Client, semver_releases: None
    ) -> None:
        assert await versions(client, "sort=semver") == [
            "api@3.0.0",
            "web@2.0.0+15",
            "web@2.0.0-rc.1",
            "web@1.10.0+9",
            "web@1.0.0",
            "plain",
        ]

    async def test_sort_build_keeps_releases_with_a_build_number(self, client: Client, semver_releases: None) -> None:
        assert await versions(client, "sort=build") == ["web@2.0.0+15", "web@1.10.0+9"]

    async def test_semver_order_pages_correctly(self, client: Client, semver_releases: None) -> None:
        first = await versions(client, "sort=semver&per_page=4")
        second = await versions(client, "sort=semver&per_page=4&cursor=4:1:0")
        assert first + second == await versions(client, "sort=semver")

    async def test_unknown_sort_is_400(self, client: Client) -> None:
        await create_release(client, "1.0")
        resp = await client.get(f"{ORG}/releases/?sort=size", headers=bearer())
        await assert_api_error(resp, 400, {"detail": "invalid sort"})

    async def test_session_sorts_need_flatten(self, client: Client) -> None:
        await create_release(client, "1.0")
        resp = await client.get(f"{ORG}/releases/?sort=sessions", headers=bearer())
        await assert_api_error(resp, 400, {"detail": "sorting by crash statistics requires flattening (flatten=1)"})
        assert await versions(client, "sort=sessions&flatten=1") == ["1.0"]


INVALID_PARAMETERS: list[tuple[str, str]] = [
    ("statsPeriod=soon", "Invalid date range: Invalid statsPeriod: 'soon'"),
    ("start=2024-01-01T00:00:00", "Invalid date range: start and end are both required"),
    ("start=yesterday&end=today", "Invalid date range: yesterday is not a valid ISO8601 date query"),
    ("start=2024-02-01&end=2024-01-01", "Invalid date range: start must be before end"),
    (
        "summaryStatsPeriod=3d",
        "Invalid summaryStatsPeriod. Valid choices are '1h', '24h', '1d', '48h', '2d', '7d', '14d', '30d', '90d'",
    ),
    ("healthStat=crashes", "invalid healthStat"),
]


class TestFilters:
    async def test_an_empty_status_lists_open_and_archived(self, client: Client) -> None:
        await create_release(client, "1.0")
        await create_release(client, "2.0")
        await client.put(f"{ORG}/releases/1.0/", json={"status": "archived"}, headers=bearer())
        assert await versions(client, "status=") == ["2.0", "1.0"]
        assert await versions(client, "status=archived") == ["1.0"]

    async def test_releases_of_no_project_are_not_listed(self, client: Client) -> None:
        await create_release(client, "1.0", projects=[])
        await create_release(client, "2.0")
        assert await versions(client, "") == ["2.0"]

    async def test_project_ids_keep_their_releases_and_foreign_ones_are_403(self, client: Client) -> None:
        await create_release(client, "1.0", projects=["web"])
        await create_release(client, "2.0", projects=["mobile"])
        web = (await get_json(client, f"{ORG}/releases/1.0/"))["projects"][0]["id"]
        assert await versions(client, f"project={web}") == ["1.0"]
        assert await versions(client, "project=-1") == ["2.0", "1.0"]
        resp = await client.get(f"{ORG}/releases/?project=999999", headers=bearer())
        assert resp.status == 403

    async def test_an_unknown_environment_is_404_and_a_known_one_keeps_its_deployed_releases(
        self, client: Client
    ) -> None:
        await create_release(client, "1.0")
        await create_release(client, "2.0")
        resp = await client.get(f"{ORG}/releases/?environment=production", headers=bearer())
        await assert_api_error(resp, 404, {"detail": "The requested resource does not exist"})
        deployed = await client.post(
            f"{ORG}/releases/1.0/deploys/", json={"environment": "production"}, headers=bearer()
        )
        assert deployed.status == 201
        assert await versions(client, "environment=production") == ["1.0"]

    async def test_date_and_period_parameters_are_validated(self, client: Client) -> None:
        await create_release(client, "1.0")
        for query, detail in INVALID_PARAMETERS:
            resp = await client.get(f"{ORG}/releases/?{query}", headers=bearer())
            await assert_api_error(resp, 400, {"detail": detail})

    async def test_a_date_range_keeps_releases_created_in_it(self, client: Client) -> None:
        await create_release(client, "1.0")
        assert await versions(client, "statsPeriod=1h") == ["1.0"]
        assert await versions(client, "start=2000-01-01T00:00:00Z&end=2000-02-01T00:00:00Z") == []

    async def test_health_and_adoption_stages_have_sentrys_shape_with_empty_values(self, client: Client) -> None:
        await create_release(client, "1.0")
        (body,) = await get_json(client, f"{ORG}/releases/?health=1&adoptionStages=1")
        assert body["adoptionStages"] is None
        assert body["projects"][0]["healthData"] is None
        assert body["projects"][0]["hasHealthData"] is False
        (plain,) = await get_json(client, f"{ORG}/releases/")
        assert "adoptionStages" not in plain and "healthData" not in plain["projects"][0]


class TestCurrentProjectMeta:
    async def _project_id(self, client: Client) -> int:
        return int((await get_json(client, f"{ORG}/releases/2.0/"))["projects"][0]["id"])

    async def test_current_project_meta_names_the_neighbours_first_and_last(self, client: Client) -> None:
        for version in ["1.0", "2.0", "3.0"]:
            await create_release(client, version)
        project = await self._project_id(client)
        body = await get_json(client, f"{ORG}/releases/2.0/?project={project}")
        assert body["currentProjectMeta"] == {
            "sessionsLowerBound": None,
            "sessionsUpperBound": None,
            "nextReleaseVersion": "3.0",
            "prevReleaseVersion": "1.0",
            "firstReleaseVersion": "1.0",
            "lastReleaseVersion": "3.0",
        }
        assert (await get_json(client, f"{ORG}/releases/2.0/"))["currentProjectMeta"] == {}
        # The project endpoint has no neighbours (project_release_details.py).
        assert (await get_json(client, f"{PROJECT}/releases/2.0/?project={project}"))["currentProjectMeta"] == {}

    async def test_neighbours_honour_status_and_query(self, client: Client) -> None:
        for version in ["1.0", "2.0", "3.0", "x4.0"]:
            await create_release(client, version)
        await client.put(f"{ORG}/releases/3.0/", json={"status": "archived"}, headers=bearer())
        project = await self._project_id(client)
        meta = (await get_json(client, f"{ORG}/releases/2.0/?project={project}"))["currentProjectMeta"]
        assert (meta["prevReleaseVersion"], meta["nextReleaseVersion"]) == ("1.0", "x4.0")
        meta = (await get_json(client, f"{ORG}/releases/2.0/?project={project}&query=x"))["currentProjectMeta"]
        assert (meta["prevReleaseVersion"], meta["nextReleaseVersion"]) == (None, "x4.0")
        meta = (await get_json(client, f"{ORG}/releases/2.0/?project={project}&status=archived"))["currentProjectMeta"]
        assert (meta["prevReleaseVersion"], meta["nextReleaseVersion"]) == (None, "3.0")
        assert (meta["firstReleaseVersion"], meta["lastReleaseVersion"]) == ("1.0", "x4.0")

    async def test_an_unknown_sort_or_status_with_a_project_is_400(self, client: Client) -> None:
        await create_release(client, "2.0")
        project = await self._project_id(client)
        resp = await client.get(f"{ORG}/releases/2.0/?project={project}&sort=semver", headers=bearer())
        await assert_api_error(resp, 400, {"detail": "invalid sort"})
        resp = await client.get(f"{ORG}/releases/2.0/?project={project}&status=gone", headers=bearer())
        await assert_api_error(resp, 400, {"detail": "invalid value for status"})

    async def test_an_unknown_project_is_ignored_unless_health_is_asked(self, client: Client) -> None:
        await create_release(client, "2.0")
        assert (await get_json(client, f"{ORG}/releases/2.0/?project=nope"))["currentProjectMeta"] == {}
        resp = await client.get(f"{ORG}/releases/2.0/?project=nope&health=1", headers=bearer())
        await assert_api_error(resp, 400, {"detail": "Invalid project"})


class TestStatusRoundTrip:
    async def test_creating_an_existing_release_with_another_status_changes_it(self, client: Client) -> None:
        await create_release(client, "1.0")
        for status in ("archived", "open"):
            resp = await client.post(
                f"{ORG}/releases/", json={"version": "1.0", "projects": ["web"], "status": status}, headers=bearer()
            )
            assert resp.status == 208
            assert (await resp.json())["status"] == status

    async def test_archived_survives_updates_of_other_fields(self, client: Client) -> None:
        await create_release(client, "1.0")
        await client.put(f"{ORG}/releases/1.0/", json={"status": "archived"}, headers=bearer())
        resp = await client.put(f"{ORG}/releases/1.0/", json={"ref": "main"}, headers=bearer())
        assert (await resp.json())["status"] == "archived"

    async def test_a_new_release_may_be_created_archived(self, client: Client) -> None:
        resp = await client.post(
            f"{ORG}/releases/", json={"version": "1.0", "projects": ["web"], "status": "archived"}, headers=bearer()
        )
        assert (resp.status, (await resp.json())["status"]) == (201, "archived")


class TestDeploys:
    async def test_deploys_show_in_the_release_json_and_list_newest_first_in_pages(self, client: Client) -> None:
        await create_release(client, "1.0")
        for i, env in enumerate(["a", "b", "c"]):
            body = {"environment": env, "dateFinished": f"2024-01-0{i + 1}T00:00:00Z"}
            assert (await client.post(f"{ORG}/releases/1.0/deploys/", json=body, headers=bearer())).status == 201
        release = await get_json(client, f"{ORG}/releases/1.0/")
        assert (release["deployCount"], release["lastDeploy"]["environment"]) == (3, "c")
        resp = await client.get(f"{ORG}/releases/1.0/deploys/?per_page=2", headers=bearer())
        assert [d["environment"] for d in await resp.json()] == ["c", "b"]
        assert 'rel="next"; results="true"; cursor="2:1:0"' in resp.headers["Link"]
        assert [d["environment"] for d in await get_json(client, f"{ORG}/releases/1.0/deploys/?cursor=2:1:0")] == ["a"]


async def test_releases_of_an_older_data_dir_are_parsed_once_at_start_up(backend: Backend) -> None:
    """Rows from before the semver columns carry none; start-up parses them (services.backfill_semver)."""
    async with backend.catalog.write() as tx:
        org = await tx.organizations.ensure("acme")
        for version in ("web@1.0.0", "web@3.0.0", "web@2.0.0", "plain"):
            await tx.releases.get_or_create(org.id, version, ref=None, url=None, user_agent=None, date_released=None)
    assert await services.backfill_semver(backend) == 4
    assert await services.backfill_semver(backend) == 0
    async with backend.catalog.read() as tx:
        page = await tx.releases.page(
            org.id, project_id=None, in_projects=(), query=None, status="open", offset=0, limit=10, sort="semver"
        )
    assert [r.version for r in page] == ["web@3.0.0", "web@2.0.0", "web@1.0.0", "plain"]
