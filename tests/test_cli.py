"""The command line: configuration precedence, help, token and project commands, and a real
server process over a real socket."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relserver import cli
from relserver.config import Config, GiB, KiB, MiB

from .server_process import running_server

TOKEN = "e2e-token"


def parse(argv: list[str], environ: dict[str, str] | None = None) -> Config:
    return cli.config_from_args(cli.serve_parser(environ or {}).parse_args(argv))


class TestConfiguration:
    def test_defaults(self) -> None:
        config = parse([])
        assert (config.host, config.port, config.data_dir) == ("127.0.0.1", 9000, Path(".relserver"))
        assert (config.max_file_size, config.token, config.fsync, config.auto_create) == (2 * GiB, None, True, True)

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
        ],
    )
    def test_bad_values_exit_2_naming_the_problem(
        self, argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exit_info:
            parse(argv, env)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err

    def test_help_explains_every_flag_and_its_environment_variable(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            cli.main(["--help"], {})
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
        ]:
            assert flag in text and env in text
        assert "relserver token" in text


class TestAdminCommands:
    def test_token_create_list_revoke(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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

    def test_project_create(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert cli.main(["project", "create", "acme", "web", "--data-dir", str(tmp_path)], {}) == 0
        assert capsys.readouterr().out.strip() == "acme/web"
        assert cli.main(["project", "create", "acme", "Not Valid", "--data-dir", str(tmp_path)], {}) == 2


def test_python_m_relserver_help_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "relserver", "--help"], capture_output=True, text=True, check=True)
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


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with running_server(tmp_path / "a", token=TOKEN) as server:
        port = server.url.rsplit(":", 1)[1]
        result = subprocess.run(
            [sys.executable, "-m", "relserver", "--port", port, "--data-dir", str(tmp_path / "b")],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert "cannot listen on" in result.stderr
