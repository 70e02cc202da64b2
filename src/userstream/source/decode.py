"""The fast path of page decoding: msgspec decodes and type-checks each record in C, straight into the flat row.

A page's body is parsed once with each record kept as its raw bytes (``msgspec.Raw``), which are also what
Postgres keeps as the record "as received". Each record is then decoded into ``_User``, a typed mirror of
:class:`userstream.model.ApiUser` that accepts no more than it does (``tests/unit/test_source_decode.py``
checks this on generated records). A record the fast path refuses goes the slow way: pydantic validates it,
and either accepts it (a shape only the slow path knows) or gives the reason it is rejected with, so every
reason reads as before.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal, cast
from uuid import UUID

import msgspec

from userstream.model import ApiUser, UserRow, to_row

__all__ = ["Body", "decode_body", "decode_body_lenient", "decode_user_row"]


class _Name(msgspec.Struct, frozen=True):
    title: str
    first: str
    last: str


class _Street(msgspec.Struct, frozen=True):
    number: int
    name: str


class _Coordinates(msgspec.Struct, frozen=True):
    latitude: str
    longitude: str


class _Timezone(msgspec.Struct, frozen=True):
    offset: str
    description: str


class _Location(msgspec.Struct, frozen=True):
    street: _Street
    city: str
    state: str
    country: str
    postcode: int | str
    coordinates: _Coordinates
    timezone: _Timezone


class _Login(msgspec.Struct, frozen=True):
    uuid: UUID
    username: str
    password: str
    salt: str
    md5: str
    sha1: str
    sha256: str


class _Dated(msgspec.Struct, frozen=True):
    date: Annotated[datetime, msgspec.Meta(tz=True)]
    age: Annotated[int, msgspec.Meta(ge=0)]


class _Identity(msgspec.Struct, frozen=True):
    name: str
    value: str | None


class _Picture(msgspec.Struct, frozen=True):
    large: str
    medium: str
    thumbnail: str


class _User(msgspec.Struct, frozen=True):
    gender: Literal["male", "female"]
    name: _Name
    location: _Location
    email: Annotated[str, msgspec.Meta(min_length=3)]
    login: _Login
    dob: _Dated
    registered: _Dated
    phone: str
    cell: str
    id: _Identity
    picture: _Picture
    nat: Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}$")]


class Body(msgspec.Struct, frozen=True):
    """A response body: its records still as raw JSON bytes."""

    results: list[msgspec.Raw] | None = None
    info: Any = None
    error: Any = None


_body_decoder = msgspec.json.Decoder(Body)
# msgspec rounds a fraction of a second past microseconds, pydantic truncates it: a record with 7+ decimals
# anywhere (the API sends milliseconds, coordinates with 4) goes the slow way, so both give the same row.
# A leading literal lets re scan fast: ~10x cheaper than anchoring on the time's digits.
_SUB_MICROSECOND = re.compile(rb"\.[0-9]{7}")
_user_decoder = msgspec.json.Decoder(_User)


def decode_body(content: bytes) -> Body:
    """Raises ``msgspec.DecodeError`` (not JSON) or ``msgspec.ValidationError`` (not a results object)."""
    return _body_decoder.decode(content)


def decode_body_lenient(content: bytes) -> Body | None:
    """A body msgspec refused, parsed by Python's json, which takes lone surrogate escapes (``"\\ud800"``):
    one such string must cost its record (rejected with the reason), not the page (retried for ever).
    Each record comes back as JSON bytes, with ``\\u`` escapes where it holds a lone surrogate (msgspec then
    refuses that record alone). None when the body is no JSON object with a results list after all."""
    try:
        parsed = json.loads(content)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("results"), list):
        return None
    records = []
    for record in parsed["results"]:
        try:
            records.append(msgspec.Raw(json.dumps(record, ensure_ascii=False).encode()))
        except UnicodeEncodeError:  # a lone surrogate: kept escaped, so nothing is lost
            records.append(msgspec.Raw(json.dumps(record).encode()))
    info = parsed.get("info")
    return Body(results=records, info=info, error=parsed.get("error"))


def decode_user_row(raw: msgspec.Raw, fetched_at: datetime) -> UserRow | None:
    """The record's flat row, or None when the fast path refuses it (the slow path then decides)."""
    if _SUB_MICROSECOND.search(raw):
        return None
    try:
        user = _user_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    # _User mirrors ApiUser field for field: to_row reads the same attributes
    return to_row(cast(ApiUser, user), fetched_at)
