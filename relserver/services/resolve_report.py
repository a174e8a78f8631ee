"""What resolve answers: per frame, the outcome, the steps Sentry's lookup took, and hints.

These records are the one shape every door shows: the HTTP JSON (`to_json`), the command
line's trail and the fixture's assertion messages (`explain`), and the web page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..sentry.stacktraces import Frame

# Sentry's error kinds for a JavaScript frame (symbolicator-js interface.rs JsModuleErrorKind).
INVALID_LOCATION = "invalid_location"
INVALID_ABS_PATH = "invalid_abs_path"
MISSING_SOURCE = "missing_source"
MISSING_SOURCEMAP = "missing_sourcemap"
MALFORMED_SOURCEMAP = "malformed_sourcemap"
MISSING_SOURCE_CONTENT = "missing_source_content"
SCRAPING_DISABLED = "scraping_disabled"


@dataclass(frozen=True, slots=True)
class Step:
    """One check of the lookup: what was tried, whether it found something (None: neither,
    just information), and the detail (names, ids)."""

    check: str
    ok: bool | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Hint:
    """Something Sentry does not say but the uploads show: `kind` is one of
    other_dist, other_release, url_prefix, debug_id_mismatch, past_end_of_file,
    ignored_sourcemap_comment, no_debug_id, scraping, missing_source_content, several_bundles."""

    kind: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Artifact:
    """Where a file was found: a bundle member (`kind` "artifact_bundle", `id` the bundle id),
    a release file (`kind` "release_file", `id` its file id), or a map embedded as a `data:` URL
    (`kind` "embedded"); `name` is the member URL or file name, `matched` what matched it (a
    candidate name, or "debug id")."""

    kind: str
    id: str
    name: str
    matched: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "name": self.name, "matched": self.matched}

    def describe(self) -> str:
        if self.kind == "embedded":
            return "embedded data: URL"
        where = f"bundle {self.id}" if self.kind == "artifact_bundle" else f"release file {self.id}"
        how = "by debug id" if self.matched == "debug id" else f"as {self.matched}"
        return f"{self.name} in {where} ({how})"


@dataclass(frozen=True, slots=True)
class FoundBy:
    """How the frame was resolved: Sentry's `resolved_with` (debug-id, release, index,
    release-old), the minified file and the source map."""

    resolved_with: str
    minified: Artifact
    sourcemap: Artifact

    def to_json(self) -> dict[str, Any]:
        return {
            "resolved_with": self.resolved_with,
            "minified": self.minified.to_json(),
            "sourcemap": self.sourcemap.to_json(),
        }


@dataclass(slots=True)
class FrameResult:
    """One frame's answer. `resolved` is Sentry's "symbolicated": a token was found for the
    position. The original position fields are None unless resolved."""

    frame: Frame
    resolved: bool = False
    filename: str | None = None
    abs_path: str | None = None
    lineno: int | None = None
    colno: int | None = None
    function: str | None = None
    module: str | None = None
    context_line: str | None = None
    pre_context: list[str] = field(default_factory=list)
    post_context: list[str] = field(default_factory=list)
    found_by: FoundBy | None = None
    # The source map's URL as Sentry labels it (the joined reference, or the frame's abs_path).
    sourcemap: str | None = None
    steps: list[Step] = field(default_factory=list)
    # Sentry's error kind for this frame; missing_source_content may come with resolved=True.
    error: str | None = None
    hints: list[Hint] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FrameResult:
        """A frame's answer read back from `to_json` (what an HTTP client received)."""
        m = data["minified"]
        found = data.get("found_by")
        return cls(
            frame=Frame(m["abs_path"], m["lineno"], m["colno"], m.get("function"), m.get("debug_id")),
            resolved=data["resolved"],
            filename=data["filename"],
            abs_path=data["abs_path"],
            lineno=data["lineno"],
            colno=data["colno"],
            function=data["function"],
            module=data.get("module"),
            context_line=data["context_line"],
            pre_context=list(data["pre_context"]),
            post_context=list(data["post_context"]),
            found_by=FoundBy(found["resolved_with"], Artifact(**found["minified"]), Artifact(**found["sourcemap"]))
            if found
            else None,
            sourcemap=data.get("sourcemap"),
            steps=[Step(**s) for s in data["steps"]],
            error=data["error"],
            hints=[Hint(**h) for h in data.get("hints", [])],
        )

    def step(self, check: str, ok: bool | None, detail: str) -> None:
        self.steps.append(Step(check, ok, detail))

    def hint(self, kind: str, detail: str) -> None:
        self.hints.append(Hint(kind, detail))

    def to_json(self) -> dict[str, Any]:
        f = self.frame
        return {
            "resolved": self.resolved,
            "filename": self.filename,
            "abs_path": self.abs_path,
            "lineno": self.lineno,
            "colno": self.colno,
            "function": self.function,
            "module": self.module,
            "context_line": self.context_line,
            "pre_context": self.pre_context,
            "post_context": self.post_context,
            "found_by": self.found_by.to_json() if self.found_by else None,
            "sourcemap": self.sourcemap,
            "steps": [s.to_json() for s in self.steps],
            "error": self.error,
            "hints": [h.to_json() for h in self.hints],
            "minified": {
                "abs_path": f.abs_path,
                "lineno": f.lineno,
                "colno": f.colno,
                "function": f.function,
                "debug_id": f.debug_id,
            },
        }

    @property
    def original(self) -> str:
        """`file:line:col in function`, or "" when not resolved."""
        if not self.resolved:
            return ""
        where = f"{self.filename or self.abs_path}:{self.lineno}:{self.colno}"
        return f"{where} in {self.function}" if self.function else where

    def explain(self, number: int | None = None, total: int | None = None) -> str:
        f = self.frame
        position = f"{f.abs_path}:{f.lineno}" + (f":{f.colno}" if f.colno is not None else "")
        label = f"frame {number} of {total}: " if number is not None else ""
        if self.resolved:
            head = f"✔ {label}{position} → {self.original}"
            if self.error:
                head += f" ({self.error})"
        else:
            head = f"✖ {label}{position} — {self.error or 'left as it is'}"
        lines = [head]
        for s in self.steps:
            mark = "✔" if s.ok else ("✖" if s.ok is False else "·")
            lines.append(f"    {mark} {s.check}: {s.detail}")
        lines.extend(f"    hint ({h.kind}): {h.detail}" for h in self.hints)
        return "\n".join(lines)


@dataclass(slots=True)
class ResolveResult:
    """Every frame's answer, in the order the frames were given (caller-first)."""

    release: str | None
    dist: str | None
    frames: list[FrameResult]

    @property
    def ok(self) -> bool:
        """Every frame resolved (what a CI gate asks)."""
        return bool(self.frames) and all(f.resolved for f in self.frames)

    @property
    def resolved_count(self) -> int:
        return sum(1 for f in self.frames if f.resolved)

    def to_json(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "dist": self.dist,
            "ok": self.ok,
            "frames": [f.to_json() for f in self.frames],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResolveResult:
        return cls(data.get("release"), data.get("dist"), [FrameResult.from_json(f) for f in data["frames"]])

    def explain(self) -> str:
        """The readable trail: one block per frame, then a summary line."""
        total = len(self.frames)
        scope = f"release {self.release!r}" if self.release else "no release"
        scope += f", dist {self.dist!r}" if self.dist else ", no dist"
        blocks = [f.explain(i + 1, total) for i, f in enumerate(self.frames)]
        summary = f"{self.resolved_count} of {total} frame(s) resolved ({scope})"
        return "\n".join([*blocks, summary])
