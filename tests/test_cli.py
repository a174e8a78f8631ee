"""The command line: configuration precedence, help, token and project commands, and a real
server process over a real socket."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from relserver import cli
from relserver.config import Config, GiB, KiB, MiB

from .server_process import running_server

TOKEN = "e2e-token"


def parse(argv: list[str], environ: dict[str, str] | None = None) -> Config:
    args = cli.parse_args(argv, environ or {})
    assert args.command == "serve"
    return cli.config_from_args(args)


class TestConfiguration:
    def test_a_bare_command_line_uses_the_documented_defaults(self) -> None:
        config = parse([])
        assert (config.host, config.port, config.data_dir) == ("127.0.0.1", 9000, Path(".relserver"))
        assert (config.max_file_size, config.token, config.fsync, config.auto_create) == (2 * GiB, None, True, True)
        assert parse(["serve"]) == config

    def test_token_commands_and_make_run_find_the_servers_default_data_dir(self) -> None:
        """`make run` serves ./.relserver; `.venv/bin/relserver token list` must read the same."""
        for argv in (["token", "list"], ["token", "create"], ["project", "create", "a", "b"], ["vacuum"]):
            assert cli.parse_args(argv, {}).data_dir == parse([]).data_dir, argv
        makefile = (Path(__file__).parent.parent / "Makefile").read_text()
        (make_default,) = re.findall(r"^DATA_DIR \?= (.+)$", makefile, re.MULTILINE)
        assert Path(make_default) == parse([]).data_dir
        assert re.search(r"^run:.*\n\t.*--data-dir \$\(DATA_DIR\)", makefile, re.MULTILINE)

    @pytest.mark.parametrize(
        "argv",
        [
            ["--data-dir", "/srv/rel", "token", "list"],
            ["token", "list", "--data-dir", "/srv/rel"],
            ["token", "--data-dir", "/srv/rel", "list"],
            ["--data-dir=/srv/rel", "vacuum"],
            ["vacuum", "--data-dir", "/srv/rel"],
            ["--data-dir", "/tmp/elsewhere", "project", "create", "acme", "web", "--data-dir", "/srv/rel"],
        ],
    )
    def test_the_data_dir_may_come_before_or_after_the_command(self, argv: list[str]) -> None:
        assert cli.parse_args(argv, {"RELSERVER_DATA_DIR": "/from/env"}).data_dir == Path("/srv/rel")

    @pytest.mark.parametrize(
        "argv",
        [["--data-dir", "/srv/rel"], ["--data-dir", "/srv/rel", "--port", "1"], ["serve", "--data-dir", "/srv/rel"]],
    )
    def test_serve_is_the_command_when_none_is_given_and_takes_the_data_dir_either_side(self, argv: list[str]) -> None:
        assert parse(argv, {"RELSERVER_DATA_DIR": "/from/env"}).data_dir == Path("/srv/rel")
        assert parse([], {"RELSERVER_DATA_DIR": "/from/env"}).data_dir == Path("/from/env")
        assert parse(["--data-dir", "/srv/rel", "serve", "--port", "9001"]).port == 9001

    @pytest.mark.parametrize(
        ("argv", "env", "message"),
        [
            (["--data-dir", ""], {}, "argument --data-dir: an empty path is not a data dir"),
            (["--data-dir", "", "token", "list"], {}, "argument --data-dir: an empty path is not a data dir"),
            (["token", "list", "--data-dir", " "], {}, "argument --data-dir: an empty path is not a data dir"),
            ([], {"RELSERVER_DATA_DIR": ""}, "RELSERVER_DATA_DIR: an empty path is not a data dir"),
            (["token", "list"], {"RELSERVER_DATA_DIR": ""}, "RELSERVER_DATA_DIR: an empty path is not a data dir"),
        ],
    )
    def test_an_empty_data_dir_is_refused_before_anything_runs(
        self, argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv, env)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "usage: relserver" in err

    def test_a_bad_serve_variable_does_not_stop_the_token_commands(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        env = {"RELSERVER_PORT": "x", "RELSERVER_DATA_DIR": str(tmp_path)}
        assert cli.main(["token", "create"], env) == 0
        with pytest.raises(SystemExit) as exit_info:
            cli.main([], env)
        assert exit_info.value.code == 2
        assert "RELSERVER_PORT: not a port" in capsys.readouterr().err

    def test_environment_beats_default_and_flag_beats_environment(self) -> None:
        env = {
            "RELSERVER_PORT": "9100",
            "RELSERVER_HOST": "0.0.0.0",
            "RELSERVER_DATA_DIR": "/srv/rel",
            "RELSERVER_MAX_FILE_SIZE": "10MiB",
            "RELSERVER_TOKEN": "from-env",
            "RELSERVER_NO_FSYNC": "1",
            "RELSERVER_NO_AUTO_CREATE": "true",
            "RELSERVER_LOG_LEVEL": "DEBUG",
        }
        config = parse([], env)
        assert (config.port, config.host, config.data_dir, config.max_file_size) == (
            9100,
            "0.0.0.0",
            Path("/srv/rel"),
            10 * MiB,
        )
        assert (config.token, config.fsync, config.auto_create, config.log_level) == ("from-env", False, False, "debug")
        config = parse(["--port", "0", "--token", "from-flag", "--max-file-size", "512KiB"], env)
        assert (config.port, config.token, config.max_file_size) == (0, "from-flag", 512 * KiB)

    def test_the_shared_engine_settings_come_from_flag_or_environment(self) -> None:
        defaults = parse([])
        assert (defaults.blob_grace_seconds, defaults.blob_redirect, defaults.assemble_lease_seconds) == (
            3600.0,
            False,
            30.0,
        )
        env = {
            "RELSERVER_BLOB_GRACE_SECONDS": "600",
            "RELSERVER_BLOB_REDIRECT": "1",
            "RELSERVER_ASSEMBLE_LEASE_SECONDS": "2.5",
        }
        config = parse([], env)
        assert (config.blob_grace_seconds, config.blob_redirect, config.assemble_lease_seconds) == (600.0, True, 2.5)
        config = parse(["--blob-grace-seconds", "900", "--assemble-lease-seconds", "10"], env)
        assert (config.blob_grace_seconds, config.assemble_lease_seconds) == (900.0, 10.0)

    @pytest.mark.parametrize(("text", "size"), [("100", 100), ("1k", KiB), ("10MB", 10_000_000), ("2GiB", 2 * GiB)])
    def test_sizes_take_units(self, text: str, size: int) -> None:
        assert cli.parse_size(text) == size

    @pytest.mark.parametrize(
        ("argv", "env", "message"),
        [
            (["--port", "70000"], {}, "not a port"),
            (["--max-file-size", "lots"], {}, "not a size"),
            ([], {"RELSERVER_PORT": "x"}, "RELSERVER_PORT: not a port"),
            ([], {"RELSERVER_NO_FSYNC": "maybe"}, "RELSERVER_NO_FSYNC: not a boolean"),
            (["--blob-grace-seconds", "0"], {}, "not a number of seconds"),
            # Shorter could let the collector take an upload's object before its row commits.
            (["--blob-grace-seconds", "60"], {}, "'60' is too short: at least 600 seconds"),
            ([], {"RELSERVER_BLOB_GRACE_SECONDS": "599"}, "RELSERVER_BLOB_GRACE_SECONDS: '599' is too short"),
            (["--assemble-lease-seconds", "soon"], {}, "not a number of seconds"),
        ],
    )
    def test_bad_values_exit_2_naming_the_problem(
        self, argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exit_info:
            parse(argv, env)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err

    def test_vacuum_takes_the_grace_period_with_its_floor_and_a_bad_one_stops_vacuum_only(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        args = cli.parse_args(["vacuum", "--blob-grace-seconds", "900"], {})
        assert args.blob_grace_seconds == 900.0
        assert cli.parse_args(["vacuum"], {"RELSERVER_BLOB_GRACE_SECONDS": "1200"}).blob_grace_seconds == 1200.0
        for argv, env in [
            (["vacuum", "--blob-grace-seconds", "60"], {}),
            (["vacuum"], {"RELSERVER_BLOB_GRACE_SECONDS": "60"}),
        ]:
            with pytest.raises(SystemExit) as exit_info:
                cli.parse_args(argv, env)
            assert exit_info.value.code == 2
            assert "'60' is too short: at least 600 seconds" in capsys.readouterr().err
        # Another command does not read the variable.
        assert cli.main(["token", "list", "--data-dir", str(tmp_path)], {"RELSERVER_BLOB_GRACE_SECONDS": "60"}) == 1
        assert "no relserver database" in capsys.readouterr().err

    def test_help_explains_every_flag_and_its_environment_variable(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            cli.main(["serve", "--help"], {})
        text = capsys.readouterr().out
        for flag, env in [
            ("--host", "RELSERVER_HOST"),
            ("--port", "RELSERVER_PORT"),
            ("--data-dir", "RELSERVER_DATA_DIR"),
            ("--max-file-size", "RELSERVER_MAX_FILE_SIZE"),
            ("--token", "RELSERVER_TOKEN"),
            ("--no-fsync", "RELSERVER_NO_FSYNC"),
            ("--no-auto-create", "RELSERVER_NO_AUTO_CREATE"),
            ("--log-level", "RELSERVER_LOG_LEVEL"),
            ("--resolve-cache-size", "RELSERVER_RESOLVE_CACHE_SIZE"),
        ]:
            assert flag in text and env in text

    def test_the_usage_line_names_every_command_and_the_help_describes_them(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["--help"], {})
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert (
            text.startswith("usage: relserver ")
            and "{serve,token,project,vacuum,check,resolve}" in text.split("\n\n")[0]
        )
        assert "relserver serve --help" in text

    def test_every_command_option_and_positional_has_a_description(self) -> None:
        undescribed = []
        pending = [cli.build_parser({})]
        while pending:
            parser = pending.pop()
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    described = {choice.dest for choice in action._choices_actions if choice.help}
                    undescribed += [f"{parser.prog} {name}" for name in action.choices if name not in described]
                    pending += action.choices.values()
                elif not action.help or action.help == argparse.SUPPRESS:
                    undescribed.append(f"{parser.prog} {action.dest}")
        assert undescribed == []


class TestAdminCommands:
    def test_a_revoked_token_cannot_be_revoked_twice_and_list_never_shows_secrets(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        data = ["--data-dir", str(tmp_path)]
        assert (
            cli.main(["token", "create", "--scope", "project:read", "--org", "acme", "--label", "ci", *data], {}) == 0
        )
        token = capsys.readouterr().out.strip()
        assert token.startswith("sntryu_")
        assert cli.main(["token", "list", *data], {}) == 0
        listing = capsys.readouterr().out
        assert "ci" in listing and "project:read" in listing and "acme" in listing and token not in listing
        assert cli.main(["token", "revoke", "1", *data], {}) == 0
        assert cli.main(["token", "revoke", "1", *data], {}) == 1
        assert cli.main(["token", "list", *data], {}) == 0
        assert "revoked" in capsys.readouterr().out

    def test_org_token_needs_org_and_url(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert cli.main(["token", "create", "--org-token", "--data-dir", str(tmp_path)], {}) == 2
        argv = ["token", "create", "--org-token", "--org", "acme", "--url", "http://x:1/", "--data-dir", str(tmp_path)]
        assert cli.main(argv, {}) == 0
        assert capsys.readouterr().out.startswith("sntrys_")

    def test_unknown_scope_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(SystemExit):
            cli.main(["token", "create", "--scope", "root", "--data-dir", str(tmp_path)], {})

    def test_project_create_rejects_slugs_sentry_would_refuse(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert cli.main(["project", "create", "acme", "web", "--data-dir", str(tmp_path)], {}) == 0
        assert capsys.readouterr().out.strip() == "acme/web"
        assert cli.main(["project", "create", "acme", "Not Valid", "--data-dir", str(tmp_path)], {}) == 2

    def test_token_list_shows_whole_labels(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        label = "deploy from the release pipeline of the web team, rotated monthly"
        assert cli.main(["--data-dir", str(tmp_path), "token", "create", "--label", label], {}) == 0
        assert cli.main(["--data-dir", str(tmp_path), "token", "create", "--label", "short"], {}) == 0
        capsys.readouterr()
        assert cli.main(["--data-dir", str(tmp_path), "token", "list"], {}) == 0
        lines = capsys.readouterr().out.splitlines()
        assert label in lines[1] and lines[1].endswith("org:read project:releases")
        # The scopes column starts in the same place on every line.
        assert len({line.index("scopes") if i == 0 else line.index("org:read") for i, line in enumerate(lines)}) == 1

    @pytest.mark.parametrize("argv", [["token", "list"], ["token", "revoke", "1"], ["vacuum"]])
    def test_commands_that_need_a_database_say_so_and_create_nothing(
        self, tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        missing = tmp_path / "missing"
        assert cli.main([*argv, "--data-dir", str(missing)], {}) == 1
        assert (
            capsys.readouterr().err
            == f"relserver: no data dir at {missing} (give --data-dir, or start `relserver serve` once)\n"
        )
        assert not missing.exists()
        empty = tmp_path / "empty"
        empty.mkdir()
        assert cli.main([*argv, "--data-dir", str(empty)], {}) == 1
        assert capsys.readouterr().err.startswith(f"relserver: no relserver database in {empty} ")
        assert list(empty.iterdir()) == []


def test_python_m_relserver_help_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "relserver", "--help"], capture_output=True, text=True, check=True)
    assert "{serve,token,project,vacuum,check,resolve}" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "relserver", "serve", "--help"], capture_output=True, text=True, check=True
    )
    assert "--max-file-size" in result.stdout


def test_banner_names_the_url_data_dir_and_token_file(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        banner = server.log()
        token = (tmp_path / "data" / "admin-token").read_text().strip()
    assert server.url.startswith("http://127.0.0.1:") and not server.url.endswith(":0")
    assert str(tmp_path / "data") in banner
    assert token in banner
    # The token is shown once: a restart points at the file instead.
    with running_server(tmp_path / "data") as server:
        assert token not in server.log()
        server.wait_for_log("admin-token")


def test_unknown_api_calls_are_logged_with_method_and_path(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    with running_server(tmp_path / "data", token=TOKEN) as server:
        request = urllib.request.Request(f"{server.url}/api/0/not/implemented/?x=1", method="PUT")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request)
        assert error.value.code == 404
        assert error.value.read() == b""
    server.wait_for_log("unimplemented API call: PUT /api/0/not/implemented/?x=1")


def test_a_port_in_use_is_one_line_and_leaves_no_database_or_token(tmp_path: Path) -> None:
    # A data dir that exists, so "nothing created" means nothing inside it either.
    (tmp_path / "b").mkdir()
    with running_server(tmp_path / "a") as server:
        port = server.url.rsplit(":", 1)[1]
        result = subprocess.run(
            [sys.executable, "-m", "relserver", "--port", port, "--data-dir", str(tmp_path / "b")],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert result.stderr.startswith(f"relserver: cannot listen on 127.0.0.1:{port}: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert list((tmp_path / "b").iterdir()) == []
