"""Sentry's lookup rules for a JavaScript frame, and the three input forms (pure functions).

Expected values are symbolicator-js's own test cases (utils.rs, js.rs) where it has them."""

from __future__ import annotations

import base64
import json

import pytest

from relserver.models import UploadedName
from relserver.sentry import sourcemaps as sm
from relserver.sentry.stacktraces import (
    MAX_FRAMES,
    Frame,
    ResolveInputError,
    parse_event,
    parse_frame_argument,
    parse_frames,
    parse_stacktrace,
)
from relserver.services.resolve import parse_request
from relserver.services.resolve_hints import missing_file_hints, position_hints, utf16_length


class TestNames:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            (
                "https://example.com/assets/bundle.min.js",
                ["https://example.com/assets/bundle.min.js", "~/assets/bundle.min.js"],
            ),
            (
                "https://example.com/assets/bundle.min.js?foo=1&bar=baz#wat",
                [
                    "https://example.com/assets/bundle.min.js?foo=1&bar=baz",
                    "https://example.com/assets/bundle.min.js",
                    "~/assets/bundle.min.js?foo=1&bar=baz",
                    "~/assets/bundle.min.js",
                ],
            ),
            (
                "app:///_next/server/pages/_error.js",
                ["app:///_next/server/pages/_error.js", "~/_next/server/pages/_error.js"],
            ),
        ],
    )
    def test_candidate_names_are_sentrys_in_sentrys_order(self, url: str, expected: list[str]) -> None:
        assert sm.candidate_urls(url) == expected

    @pytest.mark.parametrize(
        ("url", "stem"),
        [
            ("https://example.com/bundle.js", "/bundle"),
            ("https://example.com/assets/bundle.min.js?foo=1&bar=baz", "/assets/bundle"),
            ("https://example.com/assets/bundle.js.map", "/assets/bundle"),
            ("~/x/app.d.ts", "/x/app"),
            ("app:///dist/app.mjs#frag", "/dist/app"),
        ],
    )
    def test_the_file_stem_drops_host_query_and_every_js_suffix(self, url: str, stem: str) -> None:
        assert sm.file_stem(url) == stem

    @pytest.mark.parametrize(
        ("base", "right", "joined"),
        [
            ("http://example.com/static/app.js", "app.js.map", "http://example.com/static/app.js.map"),
            ("http://example.com/static/app.js", "../maps/app.js.map", "http://example.com/maps/app.js.map"),
            ("http://example.com/app.js", "../../x.map", "http://example.com/x.map"),
            ("http://example.com/static/app.js", "/top.map", "http://example.com/top.map"),
            ("http://example.com/static/app.js", "~/top.map", "http://example.com/top.map"),
            ("http://example.com/static/app.js", "//cdn.example.com/x.map", "http://cdn.example.com/x.map"),
            ("http://example.com/static/app.js", "webpack:///src/a.js", "webpack:///src/a.js"),
            ("app:///dist/app.js", "./app.js.map", "app:///dist/app.js.map"),
            ("app:///dist/esbuild/app.js.map", "../../src/index.js", "app:///src/index.js"),
            ("/abs/dist/app.js", "app.js.map", "/abs/dist/app.js.map"),
        ],
    )
    def test_references_join_onto_the_frame_url_as_sentry_joins_them(self, base: str, right: str, joined: str) -> None:
        assert sm.join_paths(base, right) == joined


class TestSourceMapReference:
    def test_the_last_comment_wins_and_query_and_fragment_go(self) -> None:
        text = "a()\n//# sourceMappingURL=first.js.map\nb()\n//# sourceMappingURL=second.js.map?v=1#x  junk\n"
        assert sm.discover_sourcemap_reference(text) == "second.js.map"

    def test_the_deprecated_at_form_counts_but_a_comment_without_its_space_does_not(self) -> None:
        assert sm.discover_sourcemap_reference("//@ sourceMappingURL=old.map") == "old.map"
        for ignored in ("//#sourceMappingURL=app.js.map", "/*# sourceMappingURL=app.js.map */", "sourceMappingURL=x"):
            assert sm.discover_sourcemap_reference(ignored) is None, ignored
            assert sm.ignored_sourcemap_comments(ignored), ignored
        assert sm.ignored_sourcemap_comments("//# sourceMappingURL=app.js.map") == []

    def test_a_sourcemap_header_beats_x_sourcemap_beats_the_comment(self) -> None:
        text = "//# sourceMappingURL=comment.map"
        assert sm.sourcemap_reference({"SourceMap": "a.map", "X-SourceMap": "b.map"}, text)[0] == "a.map"
        assert sm.sourcemap_reference({"x-sourcemap": "b.map"}, text)[0] == "b.map"
        assert sm.sourcemap_reference({}, text) == ("comment.map", "sourceMappingURL comment")

    def test_data_urls_decode_as_base64_or_percent_encoding(self) -> None:
        payload = b'{"version":3}'
        assert sm.decode_data_url("data:application/json;base64," + base64.b64encode(payload).decode()) == payload
        assert sm.decode_data_url("data:application/json," + "%7B%22version%22%3A3%7D") == payload
        with pytest.raises(sm.DataUrlError):
            sm.decode_data_url("data:application/json;base64")
        with pytest.raises(sm.DataUrlError):
            sm.decode_data_url("data:application/json;base64,a")

    def test_debug_ids_are_read_from_the_comment_and_from_the_map(self) -> None:
        did = "2C8E1B3C-8A57-4D8C-9C1F-0123456789AB"
        assert sm.discover_debug_id(f"x()\n//# debugId={did}\n") == did.lower()
        assert sm.discover_debug_id(f"//@ debugId={did}") is None
        assert (
            sm.embedded_debug_id(f'{{"debug_id":"{did}","debugId":"00000000-0000-0000-0000-000000000001"}}'.encode())
            == did.lower()
        )
        assert sm.embedded_debug_id(b"not json") is None
        in_a_string = json.dumps({"sourcesContent": [f'const meta = {{"debugId": "{did}"}};']}).encode()
        assert sm.embedded_debug_id(in_a_string) is None


class TestNamesOfFunctionsAndModules:
    @pytest.mark.parametrize(
        ("name", "folded"),
        [
            ("foo", "foo"),
            ("foo.foo", "foo.foo"),
            ("foo.foo.foo", "{foo#2}.foo"),
            ("bar.foo.foo.onError", "bar.{foo#2}.onError"),
            ("bar.bar.bar.foo.foo.onError", "{bar#3}.{foo#2}.onError"),
        ],
    )
    def test_repeated_segments_fold_as_sentry_folds_them(self, name: str, folded: str) -> None:
        assert sm.fold_function_name(name) == folded

    def test_a_useless_scope_name_gives_way_to_the_callsite_then_the_minified_name(self) -> None:
        assert sm.function_for_token("e", "Cart.describe", "map") == "Cart.describe"
        assert sm.function_for_token("e", "<anonymous>", "formatPrice") == "formatPrice"
        assert sm.function_for_token(None, "<anonymous>", None) == "<anonymous>"
        assert sm.function_for_token("o", "__webpack_require__", None) == "o"

    def test_webpack_names_are_normalised_and_modules_made_up(self) -> None:
        assert sm.fixup_webpack_filename("webpack:///./src/a.js") == "./src/a.js"
        assert sm.fixup_webpack_filename("webpack://my-app/./src/a.js") == "./src/a.js"
        assert sm.fixup_webpack_filename("webpack:///~/lodash/x.js") == "~/lodash/x.js"
        assert sm.generate_module("http://google.com/js/v1.0/foo/bar/baz.js") == "foo/bar/baz"


class TestStackStrings:
    def test_v8_frames_are_read_and_reversed_to_caller_first(self) -> None:
        stack = (
            "Error: boom\n"
            "    at formatPrice (https://x.test/app.js:1:28)\n"
            "    at https://x.test/app.js:1:177\n"
            "    at Array.map (<anonymous>)\n"
            "    at async Cart.load (https://x.test/app.js:2:5)\n"
            "    at eval (eval at run (https://x.test/app.js:1:1), <anonymous>:1:1)\n"
        )
        assert parse_stacktrace(stack) == [
            Frame("https://x.test/app.js", 2, 5, "Cart.load"),
            Frame("https://x.test/app.js", 1, 177, None),
            Frame("https://x.test/app.js", 1, 28, "formatPrice"),
        ]

    def test_spidermonkey_and_javascriptcore_frames_are_read(self) -> None:
        firefox = "formatPrice@https://x.test/app.js:1:28\ndescribe/<@https://x.test/app.js:1:177\n@https://x.test/app.js:2:8\n"
        assert [(f.function, f.lineno, f.colno) for f in parse_stacktrace(firefox)] == [
            (None, 2, 8),
            ("describe/<", 1, 177),
            ("formatPrice", 1, 28),
        ]
        safari = "formatPrice@https://x.test/app.js:1:28\nmap@[native code]\nglobal code@https://x.test/app.js:2:8\n"
        assert [(f.function, f.lineno) for f in parse_stacktrace(safari)] == [("global code", 2), ("formatPrice", 1)]

    def test_a_string_without_frames_is_a_400_saying_what_was_expected(self) -> None:
        with pytest.raises(ResolveInputError, match="no frames found"):
            parse_stacktrace("Error: boom\n")
        # Positions no 32-bit frame field holds are not frames either.
        with pytest.raises(ResolveInputError, match="no frames found"):
            parse_stacktrace(f"    at f (https://x.test/a.js:1:{2**31})\n")
        with pytest.raises(ResolveInputError, match="not a frame"):
            parse_frame_argument(f"https://x.test/a.js:{10**30}:1")
        # More digits than int() takes, and a line on which a backtracking pattern would take
        # minutes: both are quick 400s.
        with pytest.raises(ResolveInputError, match="no frames found"):
            parse_stacktrace(f"    at f (https://x.test/a.js:{'9' * 5000}:{'9' * 5000})\n")
        with pytest.raises(ResolveInputError, match="no frames found"):
            parse_stacktrace("    at a (" * 100_000)

    def test_a_command_line_frame_is_url_line_col(self) -> None:
        assert parse_frame_argument("https://x.test/a.js:3:4") == Frame("https://x.test/a.js", 3, 4)
        with pytest.raises(ResolveInputError, match="URL:LINE:COL"):
            parse_frame_argument("nope")


class TestEventsAndFrames:
    def test_event_frames_take_the_debug_id_of_the_image_with_their_abs_path(self) -> None:
        did = "2c8e1b3c-8a57-4d8c-9c1f-0123456789ab"
        event = {
            "release": "1.0",
            "dist": "web",
            "exception": {
                "values": [
                    {
                        "stacktrace": {
                            "frames": [
                                {"abs_path": "app:///a.js", "lineno": 1, "colno": 2, "function": "x"},
                                {"filename": "native"},
                                {"abs_path": "app:///b.js", "lineno": 3, "colno": 4},
                            ]
                        }
                    }
                ]
            },
            "debug_meta": {"images": [{"type": "sourcemap", "code_file": "app:///a.js", "debug_id": did.upper()}]},
        }
        parsed = parse_event(event)
        assert (parsed.release, parsed.dist) == ("1.0", "web")
        assert parsed.frames == [Frame("app:///a.js", 1, 2, "x", did), Frame("app:///b.js", 3, 4)]

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ([], "must be a JSON object"),
            ({}, "exactly one of frames, event or stacktrace"),
            ({"frames": [], "stacktrace": "x"}, "got frames, stacktrace"),
            ({"frames": []}, "non-empty list"),
            ({"frames": [{"lineno": 1}]}, r"frames\[0\].abs_path"),
            ({"frames": [{"abs_path": "a", "lineno": "1"}]}, r"frames\[0\].lineno: must be an integer"),
            ({"frames": [{"abs_path": "a", "lineno": 1, "debug_id": "x"}]}, "not a debug id"),
            ({"frames": [{"abs_path": "a", "lineno": True}]}, "must be an integer"),
            ({"frames": [{"abs_path": "a", "lineno": 2**40}]}, "out of range"),
            ({"frames": [{"abs_path": "a", "lineno": 1}], "release": 3}, "release must be a string"),
            ({"event": {"exception": {"values": []}}}, "no frames with an abs_path"),
            ({"event": "x"}, "Sentry event object"),
            ({"stacktrace": 3}, "must be a string"),
            ({"frames": [{"abs_path": "a", "lineno": 1}] * (MAX_FRAMES + 1)}, "too many frames"),
        ],
    )
    def test_bad_input_is_refused_saying_what_is_wrong(self, body: object, message: str) -> None:
        with pytest.raises(ResolveInputError, match=message):
            parse_request(body)

    def test_a_body_names_release_and_dist_over_the_events_own(self) -> None:
        event = {"release": "1.0", "stacktrace": {"frames": [{"abs_path": "a.js", "lineno": 1}]}}
        assert (parse_request({"event": event}).release, parse_request({"event": event, "release": "2.0"}).release) == (
            "1.0",
            "2.0",
        )
        assert parse_frames([{"abs_path": "a.js", "lineno": None}])[0].lineno is None


class TestHints:
    def test_a_name_uploaded_under_another_dist_or_release_is_named(self) -> None:
        names = [
            UploadedName("release_file", "~/dist/app.js", "1.0", "ios"),
            UploadedName("artifact_bundle", "~/dist/app.js", "0.9", None),
        ]
        hints = missing_file_hints("app:///dist/app.js", names, "1.0", None)
        assert [k for k, _ in hints] == ["other_dist", "other_release"]
        assert "dist 'ios'" in hints[0][1] and "release '0.9'" in hints[1][1]

    def test_the_nearest_name_comes_with_the_url_prefix_that_matches_it(self) -> None:
        names = [UploadedName("artifact_bundle", "~/app.js", "1.0", None)]
        ((kind, detail),) = missing_file_hints("https://cdn.test/static/js/app.js", names, "1.0", None)
        assert kind == "url_prefix" and "--url-prefix '~/static/js'" in detail
        names = [UploadedName("artifact_bundle", "~/build/js/app.js", "1.0", None)]
        ((_, detail),) = missing_file_hints("https://cdn.test/static/js/app.js", names, "1.0", None)
        assert "--url-prefix '~/static', uploading the folder build/ itself" in detail

    def test_a_position_past_the_end_of_the_file_says_it_is_not_the_file_that_ran(self) -> None:
        lines = [utf16_length(line) for line in ["a", "b😀", ""]]
        assert lines == [1, 3, 0]
        assert position_hints(lines, 3, 1)[0][0] == "past_end_of_file"
        assert "column 9" in position_hints(lines, 2, 9)[0][1]
        assert position_hints(lines, 2, 4) == []
