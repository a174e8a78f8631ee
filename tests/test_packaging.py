"""What a built wheel carries: the LICENSE that pyproject's `license = "MIT"` promises, and the
web UI's templates and assets."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_the_wheel_ships_the_license_file(tmp_path: Path) -> None:
    # A copy of what the build reads, so the build leaves nothing (build/, *.egg-info) in the tree.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "relserver", source / "relserver", ignore=shutil.ignore_patterns("__pycache__"))
    # Offline: no index, no isolated build env; the venv's setuptools builds it (test extras).
    offline = ["--no-deps", "--no-build-isolation", "--no-index", "-q"]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *offline, "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("relserver-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(license_name) == (ROOT / "LICENSE").read_bytes()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(metadata_name).decode().splitlines()
    assert "License-Expression: MIT" in metadata
    assert "License-File: LICENSE" in metadata
    assert "relserver/py.typed" in names
    # The web UI's templates and stylesheet are package data: a wheel without them serves no page.
    templates = {p.name for p in (ROOT / "relserver" / "ui" / "templates").glob("*.html")}
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith("relserver/ui/templates/")} == templates
    assert "relserver/ui/static/ui.css" in names
