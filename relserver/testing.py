"""relserver as a test fixture: `RelServer` (a context manager) and the pytest plugin.

`RelServer` runs a real relserver on a free loopback port in a thread of its own, so the
test process and its subprocesses (sentry-cli, a Node build) can both reach it. It records
every API call, can inject faults, and has helpers that read like a test's story::

    with RelServer() as server:
        subprocess.run(["sentry-cli", "sourcemaps", "upload", "dist", "--release", "1.0"],
                       env={**os.environ, **server.sentry_env()}, check=True)
        assert [f.name for f in server.list_files("1.0")] == ["~/app.js", "~/app.js.map"]

The pytest plugin (`relserver.pytest_plugin`, entry point `pytest11`) offers the fixtures
`relserver` (one server per test) and `relserver_session` (one per session; faults and the
call log reset per test). This module needs no pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import re
import secrets
import shutil
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from .app import SERVER_OPTIONS, create_app
from .config import Config
from .keys import assembler_key
from .services.resolve_report import ResolveResult

STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 15.0
DEFAULT_ORG = "acme"
DEFAULT_PROJECT = "web"

__all__ = ["Call", "Fault", "FileRecord", "RelServer", "RelServerError", "ResolveResult"]


class RelServerError(Exception):
    """A helper's request got an error answer."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body!r}")
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class Call:
    """One request the server answered."""

    method: str
    path: str
    query: str
    status: int
    # True when no route matched: a call relserver does not implement.
    unimplemented: bool


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A release file as the list endpoint shows it."""

    id: str
    name: str
    dist: str | None
    headers: dict[str, str]
    sha1: str
    size: int


@dataclass(slots=True)
class Fault:
    """Make matching requests fail, wait, or refuse large bodies; `times` None means always."""

    method: str
    path: str
    status: int | None = None
    body: Any = None
    delay: float = 0.0
    max_body: int | None = None
    times: int | None = 1

    def matches(self, request: web.Request) -> bool:
        return (self.method in ("*", request.method)) and fnmatch.fnmatchcase(request.path, self.path)


@dataclass(slots=True)
class _State:
    """What the test thread and the server thread share; guarded by `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def take_fault(self, request: web.Request) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(request):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return replace(fault)
        return None


def _fault_middleware(state: _State) -> Any:
    @web.middleware
    async def inject(request: web.Request, handler: Any) -> web.StreamResponse:
        fault = state.take_fault(request)
        if fault is None:
            response: web.StreamResponse = await handler(request)
            return response
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.max_body is not None and (request.content_length or 0) > fault.max_body:
            return _json(413, {"detail": f"Request body too large: the limit is {fault.max_body} bytes"})
        if fault.status is not None:
            body = fault.body if fault.body is not None else {"detail": f"Injected failure ({fault.status})"}
            return _json(fault.status, body)
        response = await handler(request)
        return response

    return inject


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")


class RelServer:
    """A real relserver on 127.0.0.1, in a thread, with a throwaway data dir by default."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        token: str | None = None,
        org: str = DEFAULT_ORG,
        project: str = DEFAULT_PROJECT,
        **config: Any,
    ) -> None:
        self.token = token or "sntryu_" + secrets.token_hex(32)
        self.org = org
        self.project = project
        self._given_dir = Path(data_dir) if data_dir is not None else None
        self._config_overrides = config
        self._state = _State()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._app: web.Application | None = None
        self._tmp: str | None = None
        self.data_dir: Path = Path()
        self.url = ""

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> RelServer:
        if self._thread is not None:
            raise RuntimeError("already started")
        if self._given_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="relserver-")
            self.data_dir = Path(self._tmp)
        else:
            self.data_dir = self._given_dir
        config = Config(host="127.0.0.1", port=0, data_dir=self.data_dir, token=self.token, fsync=False).with_overrides(
            **self._config_overrides
        )
        started = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(config, started, failure), name="relserver", daemon=True
        )
        self._thread.start()
        if not started.wait(STARTUP_TIMEOUT) or failure:
            self.stop()
            raise RuntimeError("relserver did not start") from (failure[0] if failure else None)
        return self

    def _run(self, config: Config, started: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(config, started))
        except BaseException as exc:
            failure.append(exc)
            started.set()
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _serve(self, config: Config, started: threading.Event) -> None:
        self._stop = asyncio.Event()
        app = create_app(config)
        app.middlewares.insert(0, _fault_middleware(self._state))
        app.on_response_prepare.append(self._record)
        self._app = app
        runner = web.AppRunner(app, access_log=None, **SERVER_OPTIONS)
        await runner.setup()
        try:
            site = web.TCPSite(runner, config.host, config.port)
            await site.start()
            self.url = f"http://{config.host}:{site.port}"
            started.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _record(self, request: web.Request, response: web.StreamResponse) -> None:
        if not request.path.startswith("/api/"):
            return
        call = Call(
            method=request.method,
            path=request.path,
            query=request.query_string,
            status=response.status,
            unimplemented=request.match_info.http_exception is not None and response.status == 404,
        )
        with self._state.lock:
            self._state.calls.append(call)

    def stop(self) -> None:
        """Shut the server down and remove the throwaway data dir."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(SHUTDOWN_TIMEOUT)
            if self._thread.is_alive():
                raise RuntimeError("relserver did not stop")
        self._thread = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> RelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> RelServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # --- configuration for clients ----------------------------------------------------------

    def sentry_env(self, org: str | None = None, project: str | None = None) -> dict[str, str]:
        """Environment variables that point sentry-cli (and the bundler plugins) here."""
        return {
            "SENTRY_URL": self.url,
            "SENTRY_AUTH_TOKEN": self.token,
            "SENTRY_ORG": org or self.org,
            "SENTRY_PROJECT": project or self.project,
        }

    # --- what the server saw ----------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._state.lock:
            return list(self._state.calls)

    @property
    def unimplemented_calls(self) -> list[Call]:
        return [c for c in self.calls if c.unimplemented]

    def calls_to(self, method: str, path_pattern: str) -> list[Call]:
        """Calls whose method matches and whose path matches the glob (`*` spans slashes)."""
        return [c for c in self.calls if method in ("*", c.method) and fnmatch.fnmatchcase(c.path, path_pattern)]

    # --- fault injection --------------------------------------------------------------------

    def fail(self, path: str, status: int, *, method: str = "*", body: Any = None, times: int | None = 1) -> None:
        """The next `times` matching requests answer `status` with a Sentry-shaped body."""
        self._add(Fault(method=method, path=path, status=status, body=body, times=times))

    def delay(self, path: str, seconds: float, *, method: str = "*", times: int | None = 1) -> None:
        """The next `times` matching requests wait `seconds` before being handled."""
        self._add(Fault(method=method, path=path, delay=seconds, times=times))

    def cap_request_size(self, path: str, max_bytes: int, *, method: str = "*", times: int | None = None) -> None:
        """Matching requests with a larger declared body answer 413."""
        self._add(Fault(method=method, path=path, max_body=max_bytes, times=times))

    def _add(self, fault: Fault) -> None:
        with self._state.lock:
            self._state.faults.append(fault)

    def reset(self) -> None:
        """Forget faults and the call log (data stays)."""
        with self._state.lock:
            self._state.faults.clear()
            self._state.calls.clear()

    # --- helpers that read like a test ------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *, headers: Mapping[str, str] | None = None) -> Any:
        """One API call with the admin token; JSON in and out. Raises RelServerError on >= 400."""
        return self._request(method, path, body, headers=headers)[0]

    def _request(
        self, method: str, path: str, body: Any = None, *, headers: Mapping[str, str] | None = None
    ) -> tuple[Any, str]:
        data, content_type = (None, None)
        if isinstance(body, bytes):
            data = body
            content_type = (headers or {}).get("Content-Type")
        elif body is not None:
            data, content_type = json.dumps(body).encode(), "application/json"
        all_headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        if content_type:
            all_headers["Content-Type"] = content_type
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=all_headers)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 -- our own loopback server
                raw = resp.read()
                kind = resp.headers.get("Content-Type", "")
                link = resp.headers.get("Link", "")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                error_body: Any = json.loads(raw)
            except ValueError:
                error_body = raw.decode("utf-8", "replace")
            raise RelServerError(exc.code, error_body) from None
        return (json.loads(raw) if kind.startswith("application/json") and raw else raw), link

    def create_release(self, version: str, projects: Iterable[str] | None = None, *, org: str | None = None) -> Any:
        body = {"version": version, "projects": list(projects if projects is not None else [self.project])}
        return self.request("POST", f"/api/0/organizations/{org or self.org}/releases/", body)

    def upload_file(
        self,
        version: str,
        name: str,
        data: bytes,
        *,
        dist: str | None = None,
        headers: Iterable[str] = (),
        org: str | None = None,
        project: str | None = None,
    ) -> FileRecord:
        """The single-file upload, as sentry-cli 2.x sends it (`headers` as "Key: Value")."""
        fields: list[tuple[str, str]] = [("name", name)]
        if dist:
            fields.append(("dist", dist))
        fields += [("header", h) for h in headers]
        body, content_type = _multipart(fields, ("file", name.rsplit("/", 1)[-1] or "file", data))
        answer = self.request(
            "POST",
            f"{self._scope(org, project)}/releases/{_segment(version)}/files/",
            body,
            headers={"Content-Type": content_type},
        )
        return _record(answer)

    def list_files(self, version: str, *, org: str | None = None, project: str | None = None) -> list[FileRecord]:
        """Every file of a release (following the pagination), classic files and bundle members."""
        records: list[FileRecord] = []
        cursor: str | None = ""
        while cursor is not None:
            page, link = self._request(
                "GET", f"{self._scope(org, project)}/releases/{_segment(version)}/files/?cursor={cursor}"
            )
            records += [_record(f) for f in page]
            cursor = _next_cursor(link)
        return records

    def read_file(
        self, version: str, name: str, *, dist: str | None = None, org: str | None = None, project: str | None = None
    ) -> bytes:
        """The bytes of the release file with this name (and dist)."""
        for record in self.list_files(version, org=org, project=project):
            if record.name == name and record.dist == dist:
                raw = self.request(
                    "GET", f"{self._scope(org, project)}/releases/{_segment(version)}/files/{record.id}/?download"
                )
                assert isinstance(raw, bytes)
                return raw
        raise KeyError(f"no file {name!r} (dist {dist!r}) in release {version!r}")

    def list_bundles(self, *, org: str | None = None, project: str | None = None) -> list[dict[str, Any]]:
        bundles: list[dict[str, Any]] = self.request(
            "GET", f"{self._project_scope(org, project)}/files/artifact-bundles/?per_page=100"
        )
        return bundles

    def bundle_files(
        self, bundle_id: str, *, org: str | None = None, project: str | None = None
    ) -> list[dict[str, Any]]:
        body = self.request("GET", f"{self._project_scope(org, project)}/artifact-bundles/{bundle_id}/files/")
        files: list[dict[str, Any]] = body["files"]
        return files

    def lookup(
        self,
        *,
        debug_id: str | None = None,
        release: str | None = None,
        url: str | None = None,
        dist: str | None = None,
        org: str | None = None,
        project: str | None = None,
    ) -> list[dict[str, Any]]:
        """Sentry's artifact lookup: which bundles (or files) would processing use?"""
        query = urllib.parse.urlencode(
            {k: v for k, v in {"debug_id": debug_id, "release": release, "url": url, "dist": dist}.items() if v}
        )
        found: list[dict[str, Any]] = self.request(
            "GET", f"{self._project_scope(org, project)}/artifact-lookup/?{query}"
        )
        return found

    def resolve(
        self,
        frames: Iterable[Mapping[str, Any] | str] | None = None,
        *,
        stacktrace: str | None = None,
        event: Mapping[str, Any] | None = None,
        release: str | None = None,
        dist: str | None = None,
        org: str | None = None,
        project: str | None = None,
    ) -> ResolveResult:
        """Would Sentry resolve these frames with what was uploaded? Give frames (dicts with
        abs_path, lineno, colno, or "URL:LINE:COL" strings, outermost call first), a raw
        `Error.stack` string, or a whole Sentry event. The answer has `.ok` (every frame
        resolved), `.frames` (each with `.resolved`, `.filename`, `.lineno`, `.function`,
        `.error`, `.steps`, `.hints`) and `.explain()` for an assertion message::

            result = server.resolve(stacktrace=error_stack, release="1.0")
            assert result.ok, result.explain()
        """
        body: dict[str, Any] = {"release": release, "dist": dist}
        if frames is not None:
            body["frames"] = [_frame_json(f) for f in frames]
        if stacktrace is not None:
            body["stacktrace"] = stacktrace
        if event is not None:
            body["event"] = dict(event)
        answer = self.request("POST", f"{self._project_scope(org, project)}/relserver/resolve/", body)
        return ResolveResult.from_json(answer)

    def wait_for_assembly(self, timeout: float = 60.0) -> None:
        """Until every bundle the server accepted has been assembled."""
        if self._app is None or self._loop is None:
            raise RuntimeError("not started")
        future = asyncio.run_coroutine_threadsafe(self._app[assembler_key].wait_idle(), self._loop)
        future.result(timeout)

    def _scope(self, org: str | None, project: str | None) -> str:
        if project == "":
            return f"/api/0/organizations/{org or self.org}"
        return f"/api/0/projects/{org or self.org}/{project or self.project}"

    def _project_scope(self, org: str | None, project: str | None) -> str:
        return f"/api/0/projects/{org or self.org}/{project or self.project}"


_NEXT = re.compile(r'rel="next"; results="true"; cursor="([^"]+)"')


def _next_cursor(link: str) -> str | None:
    """The cursor of the `next` entry of Sentry's Link header, when it has results."""
    match = _NEXT.search(link)
    return match.group(1) if match else None


def _frame_json(frame: Mapping[str, Any] | str) -> Any:
    """A frame for the resolve body: a dict as given, or "URL:LINE:COL" split at its last colons."""
    if not isinstance(frame, str):
        return dict(frame)
    match = re.fullmatch(r"(.+?):(\d+)(?::(\d+))?", frame)
    if match is None:
        return {"abs_path": frame}
    return {"abs_path": match[1], "lineno": int(match[2]), "colno": int(match[3]) if match[3] else None}


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _record(item: Mapping[str, Any]) -> FileRecord:
    return FileRecord(
        id=item["id"],
        name=item["name"],
        dist=item["dist"],
        headers=item["headers"],
        sha1=item["sha1"],
        size=item["size"],
    )


def _multipart(fields: list[tuple[str, str]], file: tuple[str, str, bytes]) -> tuple[bytes, str]:
    boundary = "relserver" + secrets.token_hex(12)
    parts = []
    name, filename, data = file
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    for key, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
