"""The README's quick start, run top to bottom as a newcomer would: its shell blocks, verbatim
but for the port, against a real server started the way `make run` starts it, with the real
sentry-cli 2.x."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import missing_system_part
from .server_process import running_server

pytestmark = pytest.mark.cli

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
VENV_BIN = Path(sys.executable).parent
# Every request the server logged: `"METHOD PATH HTTP/1.1" STATUS` (serve.ACCESS_LOG_FORMAT).
ACCESS_LINE = re.compile(r'relserver\.access: \S+ "(\S+ \S+) HTTP/[\d.]+" (\d{3})')

# What the quick start says the build left in dist/: a minified file and its source map.
APP_MIN_JS = "function hello(){console.log('hi')}hello();\n//# sourceMappingURL=app.min.js.map\n"
APP_MIN_JS_MAP = (
    '{"version":3,"file":"app.min.js","sources":["app.js"],"sourcesContent":["hello()"],'
    '"names":["hello"],"mappings":"AAAA"}\n'
)


def section(title: str) -> str:
    """The README text from a `## title` heading to the next `## ` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def quick_start_script() -> str:
    """The quick start's shell blocks after `make run` (the test starts that server itself),
    then the token commands, in README order."""
    make_block, *blocks = shell_blocks(section("Quick start"))
    assert make_block.startswith("make run"), make_block
    blocks += shell_blocks(section("Tokens and other commands"))
    assert len(blocks) == 4, blocks
    return "\n".join(blocks)


def test_the_readme_quick_start_runs_top_to_bottom_without_an_error(tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        missing_system_part("curl, which the README's quick start uses")
    project = tmp_path / "project"
    (project / "dist").mkdir(parents=True)
    (project / "dist" / "app.min.js").write_text(APP_MIN_JS)
    (project / "dist" / "app.min.js.map").write_text(APP_MIN_JS_MAP)
    # `make run`: python -m relserver --port $(PORT) --data-dir $(DATA_DIR), from the clone.
    with running_server(Path("./.relserver"), cwd=project) as server:
        script = quick_start_script().replace("http://127.0.0.1:9000", server.url)
        script = script.replace(".venv/bin/", f"{VENV_BIN}/")
        env = {
            # sentry-cli 2.x is the one `make test` puts in .venv/bin.
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(tmp_path),
            "SENTRY_DISABLE_UPDATE_CHECK": "1",
            "SENTRY_LOAD_DOTENV": "0",
        }
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        # Everything the README sent got the answer it expects (curl -s alone would hide a 409).
        log = server.wait_for_log('"DELETE /api/0/projects/acme/web/files/source-maps/?name=1.0 HTTP/1.1" 204')
    calls = ACCESS_LINE.findall(log)
    failed = [(request, status) for request, status in calls if not status.startswith("2")]
    assert failed == [], f"{failed}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert ("POST /api/0/projects/acme/web/releases/1.0/files/", "201") in calls
    assert "sntryu_" in result.stdout and "revoked token 3" in result.stdout
