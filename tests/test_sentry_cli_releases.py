"""The release flow of Sentry's docs with the real sentry-cli 2.x and 3.x against a real
relserver process and a real git repository: set-commits (--auto, --local, --commit),
list, finalize, archive/restore, deploys. One scenario per CLI line runs once per module;
the tests check what it printed and what the server stored."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import sentry_cli_env
from .server_process import ServerProcess, running_server

pytestmark = pytest.mark.cli

TOKEN = "cli-release-token"
REMOTE = "https://github.com/acme/app.git"
# What set-commits --local names the repository: sentry-cli parses its remote's *name*
# (get_repo_from_remote of the cached VCS remote, "origin"), not the remote's URL.
REPO_NAME = "origin"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("data"), token=TOKEN) as server:
        yield server


def git(repo: Path, *args: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(repo.parent),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Ada Lovelace",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada Lovelace",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
    }
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit_file(repo: Path, name: str, text: str | None, message: str) -> str:
    """Write (or with None delete) a file, commit it; the new HEAD sha."""
    path = repo / name
    if text is None:
        git(repo, "rm", "-q", name)
    else:
        path.write_text(text)
        git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@dataclass
class Scenario:
    org: str
    shas: list[str]
    runs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)


def cli_run(
    cli: Path, home: Path, cwd: Path, org: str, server: ServerProcess, *args: str
) -> subprocess.CompletedProcess[str]:
    env = sentry_cli_env(home, url=server.url, auth_token=TOKEN, org=org)
    return subprocess.run([str(cli), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.fixture(scope="module", params=["2", "3"])
def scenario(
    request: pytest.FixtureRequest, server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Scenario:
    """Three releases of one git history, each set-commits sending what is new since the last."""
    cli: Path = request.getfixturevalue("sentry_cli" if request.param == "2" else "sentry_cli_3")
    root = tmp_path_factory.mktemp(f"cli{request.param}")
    repo = root / "app"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "remote", "add", "origin", REMOTE)
    found = Scenario(org=f"acme{request.param}", shas=[])
    found.shas.append(commit_file(repo, "a.js", "1\n", "Add a"))
    found.shas.append(commit_file(repo, "a.js", "2\n", "Change a"))
    found.shas.append(commit_file(repo, "b.js", "1\n", "Add b"))

    def run(label: str, *args: str) -> None:
        found.runs[label] = cli_run(cli, root, repo, found.org, server, *args)

    run("new 1.0", "releases", "new", "1.0", "-p", "web")
    run("auto 1.0", "releases", "set-commits", "1.0", "--auto")
    found.shas.append(commit_file(repo, "a.js", None, "Remove a"))
    found.shas.append(commit_file(repo, "c.js", "1\n", "Add c"))
    run("new 2.0", "releases", "new", "2.0", "-p", "web")
    run("auto 2.0", "releases", "set-commits", "2.0", "--auto")
    found.shas.append(commit_file(repo, "c.js", "2\n", "Change c"))
    run("new 3.0", "releases", "new", "3.0", "-p", "web")
    run("local 3.0", "releases", "set-commits", "3.0", "--local")
    run("commit 3.0", "releases", "set-commits", "3.0", "--commit", f"{REPO_NAME}@{found.shas[-1]}")
    run("unknown repo", "releases", "set-commits", "3.0", "--commit", f"nope/x@{found.shas[-1]}")
    run("finalize 1.0", "releases", "finalize", "1.0")
    run("archive 2.0", "releases", "archive", "2.0")
    run("list", "releases", "list")
    run("list project", "releases", "list", "-p", "web", "-P")
    run("list raw", "releases", "list", "--raw", "-D", ",")
    run("restore 2.0", "releases", "restore", "2.0")
    run("deploy", "releases", "deploys", "1.0", "new", "-e", "production", "-n", "first")
    run("deploy 2", "releases", "deploys", "1.0", "new", "-e", "staging")
    run("deploys", "releases", "deploys", "1.0", "list")
    return found


def ok(scenario: Scenario, label: str) -> str:
    result = scenario.runs[label]
    assert result.returncode == 0, f"{label}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def api(server: ServerProcess, path: str) -> Any:
    request = urllib.request.Request(f"{server.url}/api/0/{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.load(resp)


def commit_ids(server: ServerProcess, scenario: Scenario, version: str) -> list[str]:
    return [c["id"] for c in api(server, f"organizations/{scenario.org}/releases/{version}/commits/")]


def test_set_commits_auto_on_a_new_server_sends_the_local_history(server: ServerProcess, scenario: Scenario) -> None:
    out = ok(scenario, "auto 1.0")
    # No repository has an integration: sentry-cli falls back to the local git tree.
    assert "Proceeding to find commits from local git tree" in out
    assert commit_ids(server, scenario, "1.0") == scenario.shas[2::-1]
    files = api(server, f"organizations/{scenario.org}/releases/1.0/commitfiles/")
    assert sorted((f["filename"], f["type"]) for f in files) == [("a.js", "A"), ("a.js", "M"), ("b.js", "A")]
    release = api(server, f"organizations/{scenario.org}/releases/1.0/")
    assert release["commitCount"] == 3
    assert release["authors"] == [{"name": "Ada Lovelace", "email": "ada@example.com"}]
    assert release["lastCommit"]["repository"]["name"] == REPO_NAME


def test_the_repository_is_created_from_the_remote_url(server: ServerProcess, scenario: Scenario) -> None:
    assert [r["name"] for r in api(server, f"organizations/{scenario.org}/repos/")] == [REPO_NAME]


def test_a_second_set_commits_auto_sends_only_the_new_range(server: ServerProcess, scenario: Scenario) -> None:
    ok(scenario, "auto 2.0")
    assert commit_ids(server, scenario, "2.0") == scenario.shas[4:2:-1]
    changes = {
        (f["filename"], f["type"]) for f in api(server, f"organizations/{scenario.org}/releases/2.0/commitfiles/")
    }
    assert changes == {("a.js", "D"), ("c.js", "A")}


def test_set_commits_local_sends_only_the_commits_since_the_previous_release(
    server: ServerProcess, scenario: Scenario
) -> None:
    assert "Success! Set commits for release 3.0" in ok(scenario, "local 3.0")
    assert commit_ids(server, scenario, "3.0") == [scenario.shas[5]]


def test_set_commits_with_an_explicit_commit_sets_the_head_commit(server: ServerProcess, scenario: Scenario) -> None:
    out = ok(scenario, "commit 3.0")
    assert REPO_NAME in out and scenario.shas[-1][:12] in out
    db = sqlite3.connect(server.data_dir / "relserver.sqlite3")
    try:
        row = db.execute(
            "SELECT c.key FROM release_head_commits h JOIN commits c ON c.id = h.commit_id"
            " JOIN releases r ON r.id = h.release_id JOIN organizations o ON o.id = r.organization_id"
            " WHERE o.slug = ? AND r.version = '3.0'",
            (scenario.org,),
        ).fetchall()
    finally:
        db.close()
    assert row == [(scenario.shas[-1],)]
    # The refs replace no commits: the local ones stay.
    assert commit_ids(server, scenario, "3.0") == [scenario.shas[5]]


def test_set_commits_with_an_unknown_repository_fails_in_the_cli(scenario: Scenario) -> None:
    result = scenario.runs["unknown repo"]
    assert result.returncode != 0
    assert "Unknown repo 'nope/x'" in result.stderr


def test_releases_list_shows_open_releases_in_every_form(scenario: Scenario) -> None:
    for label in ("list", "list project"):
        out = ok(scenario, label)
        assert "1.0" in out and "3.0" in out
    assert "web" in ok(scenario, "list project")
    # 2.0 was archived before the lists ran.
    assert ok(scenario, "list raw").strip() == "3.0,1.0"


def test_archive_then_restore_round_trips_the_status(server: ServerProcess, scenario: Scenario) -> None:
    """Both post the release again with a `status`: an existing release takes a status that
    differs (organization_releases.py), "open" included."""
    assert "Archived release 2.0" in ok(scenario, "archive 2.0")
    # The lists that ran while it was archived left it out (test_releases_list_…).
    assert "Restored release 2.0" in ok(scenario, "restore 2.0")
    assert api(server, f"organizations/{scenario.org}/releases/2.0/")["status"] == "open"
    assert api(server, f"organizations/{scenario.org}/releases/?status=archived") == []


def test_finalize_sets_the_release_date(server: ServerProcess, scenario: Scenario) -> None:
    ok(scenario, "finalize 1.0")
    assert api(server, f"organizations/{scenario.org}/releases/1.0/")["dateReleased"] is not None
    finalized = api(server, f"organizations/{scenario.org}/releases/?query=finalized:true")
    assert [r["version"] for r in finalized] == ["1.0"]


def test_deploys_new_and_list_store_and_show_what_was_sent(server: ServerProcess, scenario: Scenario) -> None:
    ok(scenario, "deploy")
    ok(scenario, "deploy 2")
    listing = ok(scenario, "deploys")
    assert "production" in listing and "staging" in listing and "first" in listing
    release = api(server, f"organizations/{scenario.org}/releases/1.0/")
    assert release["deployCount"] == 2
    assert release["lastDeploy"]["environment"] == "staging"
    deployed = api(server, f"organizations/{scenario.org}/releases/?environment=production")
    assert [r["version"] for r in deployed] == ["1.0"]
