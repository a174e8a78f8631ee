"""Text as it arrives on the wire: header bytes read as Django reads them, and Host validation."""

from __future__ import annotations

import re

from .fields import LONE_SURROGATE


def header_text(value: str) -> str:
    """A header value as Django reads it: bytes as latin-1 (WSGI's rule, PEP 3333).

    aiohttp decodes header bytes as UTF-8 and keeps undecodable ones as lone surrogates,
    which no database stores and no response encodes; those values are read as latin-1.
    """
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("latin-1")
    return value


def has_undecodable_bytes(value: str) -> bool:
    """True for a header value that held bytes which are not UTF-8 (see `header_text`)."""
    return not value.isascii() and header_text(value) != value


def without_surrogates(text: str) -> str:
    """Text decoded from a client's bytes, with any lone surrogate (utf-7 and the escape codecs
    make them) replaced by U+FFFD, as a strict decoder with errors="replace" would."""
    return LONE_SURROGATE.sub("\ufffd", text)


# Django's host_validation_re (http/request.py): a name or a bracketed IPv6 address, then a port.
_HOST = re.compile(r"(?i)([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(:[0-9]+)?")


INVALID_HOST = "Invalid HTTP_HOST header."


def is_valid_host(host: str) -> bool:
    return _HOST.fullmatch(host) is not None
