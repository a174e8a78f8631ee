"""Run a real sentry-cli upload against a throwaway relserver and report what arrived.

    .venv/bin/python scripts/sentry_cli_example.py [--cli PATH]

Builds a tiny `dist/` (a minified script, its source map, a vendor file), runs
`sentry-cli sourcemaps upload --release 1.0 --wait` against a `RelServer`, then prints the
API calls the server saw and the files the release now has.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from relserver.testing import RelServer


def default_cli() -> str:
    beside = Path(sys.executable).parent / "sentry-cli"
    return str(beside) if beside.exists() else (shutil.which("sentry-cli") or "sentry-cli")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cli", default=os.environ.get("SENTRY_CLI") or default_cli(), help="the sentry-cli binary")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, RelServer() as server:
        dist = Path(work) / "dist"
        dist.mkdir()
        (dist / "app.min.js").write_text("function a(){return 1}\n//# sourceMappingURL=app.min.js.map\n")
        (dist / "app.min.js.map").write_text('{"version":3,"sources":["app.js"],"names":[],"mappings":"AAAA"}')
        (dist / "vendor.js").write_text("var vendor = true;\n")
        env = {**os.environ, **server.sentry_env(), "HOME": work}
        print(f"relserver at {server.url}; running {args.cli}")
        subprocess.run([args.cli, "releases", "new", "1.0", "-p", "web"], env=env, check=True)
        subprocess.run([args.cli, "sourcemaps", "upload", str(dist), "--release", "1.0", "--wait"], env=env, check=True)
        print("\nAPI calls the server answered:")
        for call in server.calls:
            print(f"  {call.status} {call.method} {call.path}{'?' + call.query if call.query else ''}")
        print("\nFiles of release 1.0:")
        for record in server.list_files("1.0"):
            print(f"  {record.name:24} {record.size:6} bytes  sha1 {record.sha1}  headers {record.headers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
