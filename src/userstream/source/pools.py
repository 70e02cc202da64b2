# ruff: noqa: RUF001  (non-Latin scripts are the point of these tables)
"""Per-nationality pools, built once per process, so that generating a user is only cheap PRNG draws.

Faker is far too slow per record (~100 µs a user) but its locale data is good: we draw each locale's first
names, last names and street names once with a fixed seed, de-duplicate and sort them (so the pools depend on
Faker's *data*, not on how it consumes randomness), and pair every name with its e-mail-safe ASCII form.
Output is therefore byte-identical for a given Faker version; :data:`POOLS_FINGERPRINT` identifies it.
"""

from __future__ import annotations

import hashlib
import itertools
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from random import Random

from faker import Faker

from userstream.model import NATIONALITIES
from userstream.source.locales import NAT_SPECS, NatSpec

__all__ = ["NatPool", "Pattern", "ascii_slug", "get_pools"]

_FAKER_SEED = 1_4  # any fixed value; "1.4" for the API version
_DRAWS = 300  # draws per pool before de-duplication; enough variety, cheap at start-up

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789"

# Letters NFKD does not decompose to ASCII, and Cyrillic / Persian scripts: the API transliterates names
# into the e-mail address (e.g. "Ярослав" -> "yaroslav"), so we do the same.
_SPECIAL = {
    "ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "đ": "d", "ł": "l", "ı": "i", "þ": "th", "ð": "d",
}  # fmt: skip
_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "h", "ґ": "g", "д": "d", "е": "e", "є": "ye", "ж": "zh", "з": "z",
    "и": "y", "і": "i", "ї": "yi", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p",
    "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ь": "", "ю": "yu", "я": "ya", "ё": "yo", "ы": "y", "э": "e", "ъ": "",
}  # fmt: skip
_PERSIAN = {
    "ا": "a", "آ": "a", "أ": "a", "إ": "e", "ب": "b", "پ": "p", "ت": "t", "ث": "s", "ج": "j", "چ": "ch",
    "ح": "h", "خ": "kh", "د": "d", "ذ": "z", "ر": "r", "ز": "z", "ژ": "zh", "س": "s", "ش": "sh", "ص": "s",
    "ض": "z", "ط": "t", "ظ": "z", "ع": "", "غ": "gh", "ف": "f", "ق": "gh", "ک": "k", "ك": "k", "گ": "g",
    "ل": "l", "م": "m", "ن": "n", "و": "v", "ؤ": "v", "ه": "h", "ة": "h", "ی": "y", "ي": "y", "ئ": "y",
    "ء": "",
}  # fmt: skip
_TRANSLIT = {**_SPECIAL, **_CYRILLIC, **_PERSIAN}


def ascii_slug(text: str) -> str:
    """Lower-case ASCII letters and digits only: the e-mail / username form of a name."""
    out = []
    for ch in text.lower():
        if ch in _TRANSLIT:
            out.append(_TRANSLIT[ch])
            continue
        for base in unicodedata.normalize("NFKD", ch):
            if "a" <= base <= "z" or "0" <= base <= "9":
                out.append(base)
    return "".join(out) or "user"


@dataclass(frozen=True, slots=True)
class Pattern:
    """A format such as ``(##) ####-####`` (``#`` a digit, ``?`` an upper-case letter), pre-expanded.

    Filling a pattern character by character costs ~1 µs, a large share of a user's budget with phone,
    cell and id. Instead the pattern is cut into three pieces: every fill of its last placeholders (<= 100
    combinations), every fill of the ones before (<= 100), and up to 128 fills of the rest; a value is then
    three draws from small tables that stay in the CPU cache (~0.4 µs), with ~1 million distinct values.
    """

    pattern: str
    head: tuple[str, ...]
    mid: tuple[str, ...]
    tail: tuple[str, ...]

    @classmethod
    def compile(cls, pattern: str) -> Pattern:
        pieces: list[tuple[str, ...]] = []
        rest = pattern
        for _ in range(2):
            split = _split_last(rest, limit=100)
            pieces.append(tuple(_expand(rest[split:])))
            rest = rest[:split]
        tail, mid = pieces
        slots = [ch for ch in rest if ch in "#?"]
        combos = 1
        for ch in slots:
            combos *= 26 if ch == "?" else 10
        if combos <= 128:
            head = tuple(_expand(rest))
        else:
            rng = Random(pattern)  # fixed per pattern: the tables, hence the output, are reproducible
            head = tuple(_fill_slowly(rest, rng) for _ in range(128))
        return cls(pattern, head, mid, tail)

    def fill(self, rng: Random) -> str:
        r = rng.random
        return (
            self.head[int(r() * len(self.head))]
            + self.mid[int(r() * len(self.mid))]
            + self.tail[int(r() * len(self.tail))]
        )


def _split_last(pattern: str, limit: int) -> int:
    """Index where the longest suffix with at most ``limit`` fills begins."""
    split, combos = len(pattern), 1
    for i in range(len(pattern) - 1, -1, -1):
        if pattern[i] in "#?":
            size = 26 if pattern[i] == "?" else 10
            if combos * size > limit:
                break
            combos *= size
        split = i
    return split


def _expand(pattern: str) -> list[str]:
    """Every fill of ``pattern`` in a fixed order."""
    options = [_UPPER if ch == "?" else _DIGITS if ch == "#" else ch for ch in pattern]
    return ["".join(combo) for combo in itertools.product(*options)]


def _fill_slowly(pattern: str, rng: Random) -> str:
    return "".join(
        _UPPER[rng.randrange(26)] if ch == "?" else _DIGITS[rng.randrange(10)] if ch == "#" else ch for ch in pattern
    )


Named = tuple[str, str]  # (name as shown, ascii slug for e-mail and username)


@dataclass(frozen=True, slots=True)
class NatPool:
    code: str
    country: str
    male: tuple[Named, ...]
    female: tuple[Named, ...]
    last: tuple[Named, ...]
    streets: tuple[str, ...]
    cities: tuple[str, ...]
    states: tuple[str, ...]
    phone: tuple[Pattern, ...]
    cell: tuple[Pattern, ...]
    postcode_pattern: Pattern | None
    postcode_range: tuple[int, int] | None
    id_name: str
    id_pattern: Pattern | None
    titles_male: tuple[str, ...]
    titles_female: tuple[str, ...]


def _draw(fakers: list[object], method: str) -> tuple[str, ...]:
    seen: set[str] = set()
    for fk in fakers:
        fn = getattr(fk, method)
        for _ in range(_DRAWS):
            seen.add(str(fn()).strip())
    seen.discard("")
    return tuple(sorted(seen))


def _named(names: tuple[str, ...]) -> tuple[Named, ...]:
    return tuple((n, ascii_slug(n)) for n in names)


def _build(spec: NatSpec) -> NatPool:
    fakers: list[object] = []
    if spec.faker_locales:
        for loc in spec.faker_locales:
            fk = Faker(loc)
            fk.seed_instance(_FAKER_SEED)
            fakers.append(fk)
    male = spec.first_male or _draw(fakers, "first_name_male")
    female = spec.first_female or _draw(fakers, "first_name_female")
    last = spec.last or _draw(fakers, "last_name")
    if spec.streets:
        streets = spec.streets
    elif spec.street_suffixes:
        streets = tuple(f"{n} {sfx}" for n in last[:120] for sfx in spec.street_suffixes)
    else:
        streets = _draw(fakers, "street_name")
    pc = spec.postcode
    return NatPool(
        code=spec.code,
        country=spec.country,
        male=_named(male),
        female=_named(female),
        last=_named(last),
        streets=streets,
        cities=spec.cities,
        states=spec.states,
        phone=tuple(Pattern.compile(p) for p in spec.phone),
        cell=tuple(Pattern.compile(p) for p in spec.cell),
        postcode_pattern=Pattern.compile(pc) if isinstance(pc, str) else None,
        postcode_range=pc if not isinstance(pc, str) else None,
        id_name=spec.id_name,
        id_pattern=Pattern.compile(spec.id_pattern) if spec.id_pattern else None,
        titles_male=spec.titles_male,
        titles_female=spec.titles_female,
    )


@lru_cache(maxsize=1)
def get_pools() -> dict[str, NatPool]:
    """All 21 nationalities' pools (built on first use, ~1 s, then cached for the process)."""
    return {code: _build(NAT_SPECS[code]) for code in NATIONALITIES}


def pools_fingerprint() -> str:
    """A short hash of every pool: equal fingerprints mean equal generator output for equal requests."""
    h = hashlib.sha256()
    for code, pool in sorted(get_pools().items()):
        h.update(repr((code, pool)).encode())
    return h.hexdigest()[:16]
