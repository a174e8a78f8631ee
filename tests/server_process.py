"""A real `python -m relserver` subprocess on a free port, for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

STARTUP_TIMEOUT = 30.0
_LISTENING = re.compile(r"listening on (http://\S+)")


class ServerProcess:
    """Starts the server, finds its URL in the banner, and keeps its output for failure reports."""

    def __init__(
        self,
        data_dir: Path,
        *,
        token: str | None,
        extra_args: Sequence[str] = (),
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        # Variables set for this process only, over the test's environment.
        self.env = dict(env or {})
        self.token = token
        self.extra_args = list(extra_args)
        self.cwd = cwd
        self.output: list[str] = []
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None
        self._pump = threading.Thread()

    def start(self) -> str:
        args = [sys.executable, "-m", "relserver", "--port", "0", "--data-dir", str(self.data_dir)]
        if self.token:
            args += ["--token", self.token]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELSERVER_")} | self.env
        self.output = []
        self.proc = subprocess.Popen(
            [*args, *self.extra_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=self.cwd,
        )
        found = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                match = _LISTENING.search(line)
                if match and not found.is_set():
                    self.url = match.group(1)
                    found.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("relserver did not start:\n" + "".join(self.output))
        return self.url

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._close_output()
        return code

    def kill(self) -> None:
        """SIGKILL: no clean-up, no goodbye (what a crash looks like)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_output()

    def _close_output(self) -> None:
        # The pump sees EOF once the process is gone; then the pipe can be closed.
        self._pump.join(5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def log(self) -> str:
        return "".join(self.output)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """The output once it contains `text` (access lines are written just after the response)."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared in the server output:\n{log}")
            time.sleep(0.02)
        return log


def run_relserver(*args: str, cwd: Path | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """One `python -m relserver …` command to its end, with no RELSERVER_* variable leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELSERVER_")}
    return subprocess.run(
        [sys.executable, "-m", "relserver", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


@contextmanager
def running_server(
    data_dir: Path, *, token: str | None = None, extra_args: Sequence[str] = (), cwd: Path | None = None
) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir, token=token, extra_args=extra_args, cwd=cwd)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            code = server.stop()
            assert code == 0, f"relserver exited with {code}:\n{server.log()}"
        elif server.proc is not None:
            server._close_output()  # the test ended the process itself
