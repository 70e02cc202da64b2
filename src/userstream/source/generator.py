"""Deterministic generation of randomuser.me 1.4 users.

Every page of a seeded sequence gets its own ``random.Random`` seeded from the request's key (seed, page,
nationalities, password spec); users are drawn one after another from it, so:

* the same request always produces the same users (byte-identical once encoded), across processes;
* ``results=N`` is a prefix of ``results=M`` for ``N < M`` on the same page;
* ``login.uuid`` comes from a second stream keyed the same way, so ids do not move if a pool changes
  (a Faker upgrade), which keeps replays of a seed idempotent downstream.

Dates are drawn relative to a fixed *anchor* day (default 2026-01-01, UTC midnight) rather than "now": that
is what makes output reproducible across days; ages are exact completed years at the anchor.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from random import Random
from typing import Any

import msgspec

from userstream.model import NATIONALITIES
from userstream.source.locales import PASSWORD_WORDS, TIMEZONES
from userstream.source.pools import NatPool, Pattern, get_pools

__all__ = ["DEFAULT_ANCHOR", "PasswordSpec", "UserGenerator"]

#: Dates are drawn relative to this day (UTC midnight), not "now", so output is reproducible.
DEFAULT_ANCHOR = date(2026, 1, 1)
_MAX_AGE = 80
_YEAR_DAYS = 365.2425

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_CHARSETS = {
    "special": " !\"#$%&'()*+,- ./:;<=>?@[\\]^_`{|}~",
    "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "lower": "abcdefghijklmnopqrstuvwxyz",
    "number": "0123456789",
}
_DAY_MS = 86_400_000
_PICTURE = "https://randomuser.me/api/portraits/"
# Salts are alphanumeric: base64's two other symbols become letters (a negligible bias for test data).
_B64_ALNUM = bytes.maketrans(b"+/", b"xQ")

try:  # CPython's built-in hash modules: ~30% faster than OpenSSL's EVP wrappers on 14-byte inputs
    from _md5 import md5 as _md5  # type: ignore[import-not-found]
    from _sha1 import sha1 as _sha1  # type: ignore[import-not-found]
    from _sha256 import sha256 as _sha256  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - other interpreters / versions
    _md5, _sha1, _sha256 = hashlib.md5, hashlib.sha1, hashlib.sha256


@dataclass(frozen=True, slots=True)
class PasswordSpec:
    """The ``password`` parameter: ``CHARSETS,MIN-MAX`` (e.g. ``upper,lower,8-16``)."""

    alphabet: str
    min_len: int = 8
    max_len: int = 64

    @classmethod
    def parse(cls, value: str | None) -> PasswordSpec | None:
        """``None`` when absent or unusable (the API then hands out common words)."""
        if not value:
            return None
        alphabet = ""
        lo, hi = 8, 64
        for part in value.split(","):
            part = part.strip().lower()
            if part in _CHARSETS and _CHARSETS[part] not in alphabet:
                alphabet += _CHARSETS[part]
            elif "-" in part or part.isdigit():
                a, _, b = part.partition("-")
                try:
                    lo = int(a)
                    hi = int(b) if b else lo
                except ValueError:
                    continue
        if not alphabet:
            return None
        lo = min(max(lo, 1), 64)
        hi = min(max(hi, lo), 64)
        return cls(alphabet, lo, hi)

    @property
    def key(self) -> str:
        return f"{self.alphabet}:{self.min_len}-{self.max_len}"

    @property
    def span(self) -> int:
        return self.max_len - self.min_len + 1


def _js(text: str) -> str:
    """A JSON string literal, quotes included (escaped once at start-up, interpolated per user)."""
    return msgspec.json.encode(text).decode()


@dataclass(frozen=True, slots=True)
class _JsonPool:
    """A :class:`NatPool` with every string pre-encoded as a JSON literal, for the text-template hot loop."""

    code: str
    country: str
    male: tuple[tuple[str, str], ...]  # (JSON literal, ascii slug)
    female: tuple[tuple[str, str], ...]
    last: tuple[tuple[str, str], ...]
    streets: tuple[str, ...]
    cities: tuple[str, ...]
    states: tuple[str, ...]
    titles_male: tuple[str, ...]
    titles_female: tuple[str, ...]
    phone: tuple[Pattern, ...]
    cell: tuple[Pattern, ...]
    postcode_pattern: Pattern | None
    postcode_lo: int
    postcode_span: int
    id_name: str
    id_pattern: Pattern | None

    @classmethod
    def of(cls, p: NatPool) -> _JsonPool:
        lo, hi = p.postcode_range or (0, -1)
        return cls(
            code=p.code,
            country=_js(p.country),
            male=tuple((_js(n), a) for n, a in p.male),
            female=tuple((_js(n), a) for n, a in p.female),
            last=tuple((_js(n), a) for n, a in p.last),
            streets=tuple(_js(x) for x in p.streets),
            cities=tuple(_js(x) for x in p.cities),
            states=tuple(_js(x) for x in p.states),
            titles_male=tuple(_js(x) for x in p.titles_male),
            titles_female=tuple(_js(x) for x in p.titles_female),
            phone=p.phone,
            cell=p.cell,
            postcode_pattern=p.postcode_pattern,
            postcode_lo=lo,
            postcode_span=hi - lo + 1,
            id_name=_js(p.id_name),
            id_pattern=p.id_pattern,
        )


class UserGenerator:
    """Generates API users from precomputed pools with a seeded PRNG (no Faker at request time).

    The hot path writes each user straight to compact JSON text (no dicts, no encoder): that is what makes
    ≥ 50,000 users/s on one core possible in CPython. :meth:`users` decodes that text for callers that
    want dicts; both views are the same bytes.
    """

    def __init__(self, anchor: date = DEFAULT_ANCHOR, pools: dict[str, NatPool] | None = None) -> None:
        self.anchor = anchor.astimezone(UTC).date() if isinstance(anchor, datetime) else anchor
        self.pools = pools if pools is not None else get_pools()
        self._json_pools = {code: _JsonPool.of(p) for code, p in self.pools.items()}
        # Dates are drawn as (day, millisecond of day). The day table gives the "YYYY-MM-DDT" prefix and
        # the age at the anchor in one lookup, where gmtime + formatting cost ~1.8 µs a date.
        self._day0 = (self.anchor - timedelta(days=366 * (_MAX_AGE + 1))).toordinal()
        self._anchor_day = self.anchor.toordinal()
        a_md = (self.anchor.month, self.anchor.day)
        days: list[tuple[str, int]] = []
        for ordinal in range(self._day0, self._anchor_day):
            d = date.fromordinal(ordinal)
            # The anchor is midnight and no date is drawn at exactly midnight (see _generate), so someone
            # born on the anchor's month/day, in the day, has not had this year's birthday yet.
            days.append((d.isoformat() + "T", self.anchor.year - d.year - ((d.month, d.day) >= a_md)))
        self._days = tuple(days)

    def age_at_anchor(self, born: datetime) -> int:
        """Completed years between ``born`` and the anchor (what ``dob.age`` / ``registered.age`` hold)."""
        born = born.astimezone(UTC)
        a = self.anchor
        return a.year - born.year - ((born.month, born.day, born.time()) > (a.month, a.day, datetime.min.time()))

    @staticmethod
    def key(seed: str, page: int, nats: Sequence[str], gender: str | None, password: PasswordSpec | None) -> str:
        # repr of a tuple: unambiguous whatever characters the seed contains.
        return repr((seed, page, tuple(nats), gender or "", password.key if password else ""))

    def _nat_list(self, nats: Sequence[str]) -> list[str]:
        return sorted({n for n in nats if n in self.pools}) or list(NATIONALITIES)

    def users_bytes(
        self,
        seed: str,
        page: int = 1,
        results: int = 1,
        nats: Sequence[str] = (),
        gender: str | None = None,
        password: PasswordSpec | None = None,
    ) -> list[bytes]:
        """``results`` users of page ``page`` of the sequence ``seed``, each as compact UTF-8 JSON.

        ``nats`` empty means all 21; ``gender`` (``male``/``female``) forces the gender. Same arguments,
        same text.
        """
        out: list[bytes] = []
        for part in self.iter_users_bytes(seed, page, results, nats, gender, password, chunk=results):
            out.extend(part)
        return out

    def iter_users_bytes(
        self,
        seed: str,
        page: int = 1,
        results: int = 1,
        nats: Sequence[str] = (),
        gender: str | None = None,
        password: PasswordSpec | None = None,
        *,
        chunk: int = 500,
    ) -> Iterator[list[bytes]]:
        """The users of :meth:`users_bytes`, in lists of ``chunk`` (the server streams them as they come)."""
        nat_list = self._nat_list(nats)
        key = self.key(seed, page, nat_list, gender, password)
        return self._generate(Random(key), Random(key + "|uuid"), results, nat_list, gender, password, chunk)

    def users(
        self,
        seed: str,
        page: int = 1,
        results: int = 1,
        nats: Sequence[str] = (),
        gender: str | None = None,
        password: PasswordSpec | None = None,
    ) -> list[dict[str, Any]]:
        """The same users as :meth:`users_bytes`, decoded to dicts."""
        text = b"[" + b",".join(self.users_bytes(seed, page, results, nats, gender, password)) + b"]"
        decoded: list[dict[str, Any]] = msgspec.json.decode(text)
        return decoded

    def _generate(
        self,
        rng: Random,
        ids: Random,
        results: int,
        nat_list: list[str],
        gender: str | None,
        password: PasswordSpec | None,
        chunk: int,
    ) -> Iterator[list[bytes]]:
        # Hot loop: everything bound to locals, one rng.random() per choice (int(r() * n) indexing), and
        # one f-string per user in the API's key order. The draw order below is part of the output
        # contract (changing it changes every seeded user): append new draws at the end only.
        r = rng.random
        choices = rng.choices
        bits = rng.getrandbits
        uuid_bits = ids.getrandbits
        md5, sha1, sha256 = _md5, _sha1, _sha256
        b2a = binascii.b2a_base64
        pools = [self._json_pools[n] for n in nat_list]
        npools = len(pools)
        words, nwords = _WORDS_JSON, len(_WORDS_JSON)
        zones, nzones = _TIMEZONES_JSON, len(_TIMEZONES_JSON)
        pictures = _PICTURES_JSON
        days, day0 = self._days, self._day0
        hm = _HOUR_MINUTE
        # Ages 18-80 at the anchor; registered in the 20 years before it, and at 18 or older.
        anchor_day = self._anchor_day
        adult = int(18 * _YEAR_DAYS) + 1
        dob_lo = anchor_day - int(_MAX_AGE * _YEAR_DAYS)
        dob_span = (anchor_day - adult - 1) - dob_lo  # keeps reg_lo below strictly before the anchor
        reg_floor = anchor_day - int(20 * _YEAR_DAYS)
        tod_span = _DAY_MS - 1
        needs_escape = password is not None and any(c in password.alphabet for c in '"\\')
        for start in range(0, results, max(chunk, 1)):
            out: list[bytes] = []
            append = out.append
            for _ in range(min(chunk, results - start)):
                # uuid v4 from its own stream: set the version nibble and the RFC 4122 variant bits.
                h = f"{(uuid_bits(128) & _UUID_CLEAR) | _UUID_SET:032x}"
                pool = pools[int(r() * npools)] if npools > 1 else pools[0]
                male = (gender == "male") if gender else r() < 0.5
                if male:
                    firsts, titles = pool.male, pool.titles_male
                else:
                    firsts, titles = pool.female, pool.titles_female
                first, first_a = firsts[int(r() * len(firsts))]
                last, last_a = pool.last[int(r() * len(pool.last))]
                title = titles[int(r() * len(titles))] if len(titles) > 1 else titles[0]
                street_no = int(r() * 9999) + 1
                street = pool.streets[int(r() * len(pool.streets))]
                city = pool.cities[int(r() * len(pool.cities))]
                state = pool.states[int(r() * len(pool.states))]
                pc = pool.postcode_pattern
                if pc is None:
                    postcode = str(pool.postcode_lo + int(r() * pool.postcode_span))
                else:
                    postcode = (
                        f'"{pc.head[int(r() * len(pc.head))]}{pc.mid[int(r() * len(pc.mid))]}'
                        f'{pc.tail[int(r() * len(pc.tail))]}"'
                    )
                lat = f"{r() * 180.0 - 90.0:.4f}"
                lon = f"{r() * 360.0 - 180.0:.4f}"
                zone = zones[int(r() * nzones)]
                username = f"{first_a}{last_a}{int(r() * 999) + 1}"
                if password is None:
                    pw, pw_json = words[int(r() * nwords)]
                else:
                    pw = "".join(choices(password.alphabet, k=password.min_len + int(r() * password.span)))
                    pw_json = _js(pw) if needs_escape else '"' + pw + '"'
                # 48 random bits -> 8 base64 characters, "+/" folded onto letters: 5x faster than choices().
                salt = b2a(bits(48).to_bytes(6, "little"), newline=False).translate(_B64_ALNUM).decode()
                salted = (pw + salt).encode()
                dob_day = dob_lo + int(r() * dob_span)
                reg_lo = max(dob_day + adult, reg_floor)
                reg_day = reg_lo + int(r() * (anchor_day - reg_lo))
                dob_prefix, dob_age = days[dob_day - day0]
                reg_prefix, reg_age = days[reg_day - day0]
                dob_ms = 1 + int(r() * tod_span)  # never exactly midnight: keeps the day table's ages exact
                reg_ms = 1 + int(r() * tod_span)
                # Pattern.fill, inlined: it is called three or four times per user.
                pat = pool.phone[int(r() * len(pool.phone))] if len(pool.phone) > 1 else pool.phone[0]
                phone = (
                    f"{pat.head[int(r() * len(pat.head))]}{pat.mid[int(r() * len(pat.mid))]}"
                    f"{pat.tail[int(r() * len(pat.tail))]}"
                )
                pat = pool.cell[int(r() * len(pool.cell))] if len(pool.cell) > 1 else pool.cell[0]
                cell = (
                    f"{pat.head[int(r() * len(pat.head))]}{pat.mid[int(r() * len(pat.mid))]}"
                    f"{pat.tail[int(r() * len(pat.tail))]}"
                )
                idp = pool.id_pattern
                if idp is None:
                    id_value = "null"
                else:
                    id_value = (
                        f'"{idp.head[int(r() * len(idp.head))]}{idp.mid[int(r() * len(idp.mid))]}'
                        f'{idp.tail[int(r() * len(idp.tail))]}"'
                    )
                picture = pictures[male][int(r() * 100)]
                append(
                    f'{{"gender":"{"male" if male else "female"}",'
                    f'"name":{{"title":{title},"first":{first},"last":{last}}},'
                    f'"location":{{"street":{{"number":{street_no},"name":{street}}},'
                    f'"city":{city},"state":{state},"country":{pool.country},"postcode":{postcode},'
                    f'"coordinates":{{"latitude":"{lat}","longitude":"{lon}"}},"timezone":{zone}}},'
                    f'"email":"{first_a}.{last_a}@example.com",'
                    f'"login":{{"uuid":"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",'
                    f'"username":"{username}","password":{pw_json},"salt":"{salt}",'
                    f'"md5":"{md5(salted).hexdigest()}","sha1":"{sha1(salted).hexdigest()}",'
                    f'"sha256":"{sha256(salted).hexdigest()}"}},'
                    f'"dob":{{"date":"{dob_prefix}{hm[dob_ms // 60000]}{dob_ms // 1000 % 60:02d}.'
                    f'{dob_ms % 1000:03d}Z","age":{dob_age}}},'
                    f'"registered":{{"date":"{reg_prefix}{hm[reg_ms // 60000]}{reg_ms // 1000 % 60:02d}.'
                    f'{reg_ms % 1000:03d}Z","age":{reg_age}}},'
                    f'"phone":"{phone}","cell":"{cell}","id":{{"name":{pool.id_name},"value":{id_value}}},'
                    f'"picture":{picture},"nat":"{pool.code}"}}'.encode()
                    # Encoding each user (not the joined page) keeps the common all-ASCII users on CPython's
                    # fast path; one Cyrillic name would otherwise widen the whole page's string to UCS-2.
                )
            yield out


_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UUID_SET = (0x4 << 76) | (0x2 << 62)
_HOUR_MINUTE = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_WORDS_JSON = tuple((w, _js(w)) for w in PASSWORD_WORDS)
_TIMEZONES_JSON = tuple(f'{{"offset":{_js(offset)},"description":{_js(desc)}}}' for offset, desc in TIMEZONES)
# Indexed by `male` (False/True), then 0-99: the API's portrait URLs.
_PICTURES_JSON = tuple(
    tuple(
        f'{{"large":"{_PICTURE}{folder}/{i}.jpg","medium":"{_PICTURE}med/{folder}/{i}.jpg",'
        f'"thumbnail":"{_PICTURE}thumb/{folder}/{i}.jpg"}}'
        for i in range(100)
    )
    for folder in ("women", "men")
)
