"""Resolve after real sentry-cli uploads of the real build outputs, through the other doors:
the fixture's `relserver.resolve(...)` and the `relserver resolve` command. When Node is
installed the app is rebuilt here (once, in one test) and checked against what is committed,
so the committed outputs stay what the bundlers make."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relserver import cli
from relserver.config import RESOLVE_CACHE_SIZE, GiB, MiB
from relserver.testing import RelServer

from .conftest import missing_system_part, sentry_cli_env
from .resolve_helpers import APP, BUILDS, DIST, app_frames, assert_matches_both_truths, stack

pytestmark = pytest.mark.cli


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=180, check=False)


def cli_env(server: RelServer, home: Path) -> dict[str, str]:
    return sentry_cli_env(home) | server.sentry_env()


@pytest.fixture
def rebuilt(tmp_path_factory: pytest.TempPathFactory, sentry_cli_3: Path) -> Path | None:
    """The app built afresh with the pinned bundlers (npm ci + build.sh), or None without Node."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    # The repository's layout, so the maps' relative source paths come out the same.
    app = tmp_path_factory.mktemp("tests") / "resolve_app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("node_modules", "dist"))
    installed = run("npm", "ci", "--no-audit", "--no-fund", "--prefer-offline", cwd=app)
    assert installed.returncode == 0, installed.stderr
    built = run("sh", "build.sh", str(app / "dist"), cwd=app, env={**os.environ, "SENTRY_CLI": str(sentry_cli_3)})
    assert built.returncode == 0, built.stderr
    return app / "dist"


@pytest.fixture
def server() -> Iterator[RelServer]:
    with RelServer() as running:
        yield running


def debug_id_event(dist: Path) -> dict[str, Any]:
    """The event a Sentry SDK sends for the injected build's error: its frames and the debug
    id of the file they ran in (read where the SDK reads it, the injected snippet's id)."""
    source = (dist / "injected" / "app.js").read_text()
    debug_id = source.rsplit("//# debugId=", 1)[1].strip()
    frames = [
        {"abs_path": f.abs_path, "lineno": f.lineno, "colno": f.colno, "function": f.function}
        for f in app_frames(stack("injected", dist))
    ]
    return {
        "platform": "javascript",
        "exception": {"values": [{"type": "Error", "stacktrace": {"frames": frames}}]},
        "debug_meta": {"images": [{"type": "sourcemap", "code_file": frames[0]["abs_path"], "debug_id": debug_id}]},
    }


def frame_dicts(result: Any) -> list[dict[str, Any]]:
    return [
        {
            "resolved": f.resolved,
            "abs_path": f.abs_path,
            "lineno": f.lineno,
            "colno": f.colno,
            "context_line": f.context_line,
            "steps": f.steps,
        }
        for f in result.frames
    ]


def upload_injected_and_resolve(server: RelServer, sentry_cli_3: Path, home: Path, dist: Path) -> None:
    """sentry-cli 3's upload of the injected build, then the event of its error resolved by
    debug id, at both truths."""
    upload = run(str(sentry_cli_3), "sourcemaps", "upload", str(dist / "injected"), env=cli_env(server, home))
    assert upload.returncode == 0, upload.stderr
    server.wait_for_assembly()
    result = server.resolve(event=debug_id_event(dist))
    assert result.ok, result.explain()
    assert_matches_both_truths(frame_dicts(result), "injected", dist)
    assert {f.found_by.resolved_with for f in result.frames if f.found_by} == {"debug-id"}


def test_sentry_cli_3_debug_id_upload_resolves_an_event_by_its_debug_ids(
    server: RelServer, sentry_cli_3: Path, tmp_path: Path
) -> None:
    upload_injected_and_resolve(server, sentry_cli_3, tmp_path, DIST)


def test_the_app_rebuilt_with_the_pinned_bundlers_is_the_committed_one_and_resolves(
    rebuilt: Path | None, server: RelServer, sentry_cli_3: Path, tmp_path: Path
) -> None:
    # The one test that rebuilds (under pytest-xdist a second user could build it again).
    if rebuilt is None:
        missing_system_part("Node and npm (to rebuild tests/resolve_app)")
    for build in BUILDS:
        for path in sorted((DIST / build).iterdir()):
            assert (rebuilt / build / path.name).read_text() == path.read_text(), f"{build}/{path.name} differs"
    upload_injected_and_resolve(server, sentry_cli_3, tmp_path, rebuilt)


def resolve_command(server: RelServer, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`relserver resolve` in this process (the subprocess door is tested once, with --json)."""
    code = cli.main(["resolve", "--data-dir", str(server.data_dir), *args], {})
    out, err = capsys.readouterr()
    return code, out, err


def test_sentry_cli_3_release_dist_and_url_prefix_upload_resolves_by_name_and_the_command_says_so(
    server: RelServer, sentry_cli_3: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = cli_env(server, tmp_path)
    args = ["sourcemaps", "upload", "--release", "2.0", "--dist", "web", "--url-prefix", "~/dist/webpack"]
    upload = run(str(sentry_cli_3), *args, str(DIST / "webpack"), env=env)
    assert upload.returncode == 0, upload.stderr
    server.wait_for_assembly()
    stack_file = DIST / "webpack" / "stack.txt"
    app_only = tmp_path / "stack.txt"
    app_only.write_text("\n".join(line for line in stack_file.read_text().splitlines() if "node:" not in line))
    where = ["--org", server.org, "--project", server.project, "--release", "2.0"]
    command = [sys.executable, "-m", "relserver", "resolve", "--data-dir", str(server.data_dir), *where]
    answer = run(*command, "--dist", "web", "--stack-file", str(app_only), "--json")
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert_matches_both_truths(json.loads(answer.stdout)["frames"], "webpack")
    code, trail, _ = resolve_command(server, capsys, *where, "--dist", "web", "--stack-file", str(app_only))
    assert code == 0 and trail.count("✔ frame") == 5, trail
    assert "5 of 5 frame(s) resolved" in trail
    # The wrong dist: exit 1, a ✖ per frame, and the hint naming the dist the files have.
    code, trail, _ = resolve_command(server, capsys, *where, "app:///dist/webpack/app.js:1:131")
    assert code == 1, trail
    assert "✖ frame 1 of 1" in trail and "hint (other_dist)" in trail and "0 of 1 frame(s) resolved" in trail


def test_the_command_refuses_unusable_input_with_exit_2_in_one_line(
    server: RelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.create_release("1.0")
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000)  # past Python's recursion limit
    for args, message in (
        (["--org", "acme", "--project", "web", "nope"], "not a frame: 'nope'"),
        (["--org", "acme", "--project", "web", "--event", str(nested)], "--event is not JSON"),
        (["--org", "acme", "--project", "web"], "give frames"),
        (["--org", "acme", "--project", "ios", "app:///a.js:1:1"], "no project acme/ios"),
        (["--org", "acme", "--project", "web", "--event", str(tmp_path / "missing.json")], "missing.json"),
    ):
        code, out, err = resolve_command(server, capsys, *args)
        assert code == 2, (args, out, err)
        assert message in err and "Traceback" not in err, err


def test_sentry_cli_2_legacy_per_file_upload_resolves_by_release(sentry_cli: Path, tmp_path: Path) -> None:
    with RelServer(upload_mode="legacy") as server:
        env = cli_env(server, tmp_path)
        created = run(str(sentry_cli), "releases", "new", "1.0", "-p", server.project, env=env)
        assert created.returncode == 0, created.stderr
        args = ["sourcemaps", "upload", "--release", "1.0", "--url-prefix", "~/dist/esbuild", str(DIST / "esbuild")]
        upload = run(str(sentry_cli), *args, env=env)
        assert upload.returncode == 0, upload.stderr
        assert {f.name for f in server.list_files("1.0")} == {"~/dist/esbuild/app.js", "~/dist/esbuild/app.js.map"}
        result = server.resolve(stacktrace=stack("esbuild"), release="1.0")
        app = [f for f in result.frames if f.frame.abs_path.startswith("app:///")]
        assert all(f.resolved for f in app), result.explain()
        assert [f.function for f in app][-1] == "formatPrice"
        assert not result.ok and "missing_source" in result.explain()


def test_the_cache_size_comes_from_the_flag_the_environment_or_the_default() -> None:
    def size(argv: list[str], env: dict[str, str]) -> int:
        return cli.config_from_args(cli.parse_args(argv, env)).resolve_cache_size

    assert size([], {}) == RESOLVE_CACHE_SIZE
    assert size([], {"RELSERVER_RESOLVE_CACHE_SIZE": "64MiB"}) == 64 * MiB
    assert size(["--resolve-cache-size", "1GiB"], {"RELSERVER_RESOLVE_CACHE_SIZE": "64MiB"}) == GiB
