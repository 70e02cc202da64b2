"""The randomuser.me 1.4 request and response, independent of any HTTP server.

:class:`Query` parses query parameters the way the API does (a bad value silently becomes the default) and
:func:`render` produces the response body in the requested format.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import msgspec

from userstream.model import API_VERSION, NATIONALITIES, TOP_LEVEL_FIELDS
from userstream.source.generator import PasswordSpec, UserGenerator

__all__ = ["FORMATS", "MAX_RESULTS", "Query", "Rendered", "encode_page", "render", "stream", "streamable"]

MAX_RESULTS = 5000
FORMATS = ("json", "pretty", "csv", "yaml", "xml")
_CONTENT_TYPES = {
    "json": "application/json; charset=utf-8",
    "pretty": "application/json; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "yaml": "application/x-yaml; charset=utf-8",
    "xml": "application/xml; charset=utf-8",
}
_NAT_SET = frozenset(NATIONALITIES)
_FIELD_SET = frozenset(TOP_LEVEL_FIELDS)


def _int_or(value: str | None, default: int, lo: int, hi: int) -> int:
    try:
        n = int(value) if value is not None else default
    except ValueError:
        return default
    return n if lo <= n <= hi else default


def _csv_set(value: str | None, allowed: frozenset[str], upper: bool = False) -> tuple[str, ...]:
    if not value:
        return ()
    items = (v.strip().upper() if upper else v.strip().lower() for v in value.split(","))
    return tuple(sorted({v for v in items if v in allowed}))


@dataclass(frozen=True, slots=True)
class Query:
    """A normalised request; :meth:`parse` never fails (the API falls back to defaults instead)."""

    results: int = 1
    seed: str | None = None
    page: int = 1
    gender: str | None = None
    nats: tuple[str, ...] = ()
    inc: tuple[str, ...] = ()
    exc: tuple[str, ...] = ()
    fmt: str = "json"
    noinfo: bool = False
    password: PasswordSpec | None = None

    @classmethod
    def parse(cls, params: Iterable[tuple[str, str]]) -> Query:
        p: dict[str, str] = {}
        for k, v in params:
            p[k.lower()] = v  # the last occurrence wins
        fmt = (p.get("format") or p.get("fmt") or "json").lower()
        gender = (p.get("gender") or "").lower()
        return cls(
            results=_int_or(p.get("results"), 1, 1, MAX_RESULTS),
            seed=p.get("seed") or None,
            page=_int_or(p.get("page"), 1, 1, 10**9),
            gender=gender if gender in ("male", "female") else None,
            nats=_csv_set(p.get("nat") or p.get("nationality"), _NAT_SET, upper=True),
            inc=_csv_set(p.get("inc"), _FIELD_SET),
            exc=_csv_set(p.get("exc"), _FIELD_SET),
            fmt=fmt if fmt in FORMATS else "json",
            noinfo="noinfo" in p,
            password=PasswordSpec.parse(p.get("password")),
        )

    @property
    def projected(self) -> bool:
        """True when inc/exc remove fields (the fast byte path only serves whole users)."""
        return bool(self.inc) or bool(self.exc)

    def keep(self, name: str) -> bool:
        return (not self.inc or name in self.inc) and name not in self.exc


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    content_type: str


def encode_page(users: list[bytes], info: dict[str, Any] | None) -> bytes:
    """``{"results":[...],"info":{...}}`` from already encoded users: no decode/encode round trip."""
    tail = b"]}" if info is None else b'],"info":' + msgspec.json.encode(info) + b"}"
    return b'{"results":[' + b",".join(users) + tail


def streamable(query: Query) -> bool:
    """Whether :func:`stream` can serve ``query`` (plain JSON of whole users)."""
    return query.fmt == "json" and not query.projected


def stream(query: Query, generator: UserGenerator, chunk: int = 500) -> Iterator[bytes]:
    """The body of :func:`render` for a :func:`streamable` query, in pieces as the users are generated,
    so the network transfer overlaps the generation. ``b"".join`` of it equals ``render(...).body``."""
    seed = query.seed or secrets.token_hex(8)
    gender = None if query.seed else query.gender
    parts = generator.iter_users_bytes(seed, query.page, query.results, query.nats, gender, query.password, chunk=chunk)
    prefix = b'{"results":['
    for part in parts:
        yield prefix + b",".join(part)
        prefix = b","
    info = {"seed": seed, "results": query.results, "page": query.page, "version": API_VERSION}
    yield b"]}" if query.noinfo else b'],"info":' + msgspec.json.encode(info) + b"}"


def render(query: Query, generator: UserGenerator, *, corrupt: Any = None) -> Rendered:
    """The response body for ``query``.

    ``corrupt`` (fault injection) is called with the list of encoded users and may replace some of them.
    """
    seed = query.seed or secrets.token_hex(8)
    # As documented: gender is ignored when a seed is given (the seed alone defines the sequence).
    gender = None if query.seed else query.gender
    users = generator.users_bytes(seed, query.page, query.results, query.nats, gender, query.password)
    if corrupt is not None:
        users = corrupt(users)
    info = (
        None
        if query.noinfo
        else {
            "seed": seed,
            "results": len(users),
            "page": query.page,
            "version": API_VERSION,
        }
    )
    if query.fmt == "json" and not query.projected:
        return Rendered(encode_page(users, info), _CONTENT_TYPES["json"])
    # Slow path (other formats, inc/exc): decode once, reshape, re-encode.
    decoded: list[Any] = msgspec.json.decode(b"[" + b",".join(users) + b"]")
    if query.projected:
        decoded = [{k: v for k, v in u.items() if query.keep(k)} if isinstance(u, dict) else u for u in decoded]
    doc: dict[str, Any] = {"results": decoded}
    if info is not None:
        doc["info"] = info
    fmt = query.fmt
    if fmt == "yaml":
        try:
            body = msgspec.yaml.encode(doc)
        except ImportError:  # PyYAML missing: fall back to JSON, as the API does for unknown formats
            fmt, body = "json", msgspec.json.encode(doc)
    elif fmt == "pretty":
        body = msgspec.json.format(msgspec.json.encode(doc), indent=2)
    elif fmt == "csv":
        body = _csv(decoded)
    elif fmt == "xml":
        body = _xml(doc)
    else:
        body = msgspec.json.encode(doc)
    return Rendered(body, _CONTENT_TYPES[fmt])


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else k, out)
    else:
        out[prefix] = "" if value is None else value


def _csv(users: list[Any]) -> bytes:
    rows = []
    for u in users:
        flat: dict[str, Any] = {}
        _flatten(u, "", flat)
        rows.append(flat)
    header: list[str] = []
    for row in rows:  # union of columns, in first-seen order (faulty records may lack some)
        header.extend(k for k in row if k not in header)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(k, "") for k in header])
    return buf.getvalue().encode()


def _xml_value(value: Any, tag: str, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append(f"<{tag}>")
        for k, v in value.items():
            _xml_value(v, k, out)
        out.append(f"</{tag}>")
    elif isinstance(value, list):
        for item in value:
            _xml_value(item, tag, out)
    elif value is None:
        out.append(f"<{tag}/>")
    else:
        out.append(f"<{tag}>{escape(str(value))}</{tag}>")


def _xml(doc: dict[str, Any]) -> bytes:
    # The API's XML: one <user> root, a <results> element per user, then <info>.
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<user>"]
    for user in doc["results"]:
        _xml_value(user, "results", out)
    if "info" in doc:
        _xml_value(doc["info"], "info", out)
    out.append("</user>")
    return "".join(out).encode()
