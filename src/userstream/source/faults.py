"""Fault injection for the bundled server: the ways the live randomuser.me API is known to misbehave.

Off by default. Each request draws at most one response-level fault (5xx, 429 + Retry-After, 200 with an
empty ``results``, 200 with a malformed body); a request that draws none may still have some of its
records corrupted (a field missing or of the wrong type). Latency is added independently.
"""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import msgspec

from userstream.model import TOP_LEVEL_FIELDS

__all__ = ["ERROR_BODY", "Fault", "FaultConfig", "FaultInjector"]

#: The API's documented error body.
ERROR_BODY = {"error": "Uh oh, something has gone wrong. Please tweet us @randomapi about the issue. Thank you."}
RATE_LIMIT_BODY = {"error": "Too many requests. Please slow down."}


class Fault(enum.Enum):
    NONE = "none"
    ERROR = "error"  # 500 / 502 / 503 with the documented error body
    RATE_LIMIT = "rate_limit"  # 429 with Retry-After
    EMPTY = "empty"  # 200 with "results": []
    MALFORMED = "malformed"  # 200 with a truncated body, an HTML page, or {"error": ...}


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """How often each fault happens; rates are shares of requests (records for ``bad_record_rate``)."""

    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_s: float = 1.0
    empty_rate: float = 0.0
    malformed_rate: float = 0.0
    bad_record_rate: float = 0.0
    latency_s: float = 0.0
    latency_rate: float = 1.0
    seed: int | None = None  # fixes the fault sequence (tests); None draws from the OS

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be between 0 and 1, got {value}")
        if self.retry_after_s < 0 or self.latency_s < 0:
            raise ValueError("retry_after_s and latency_s must not be negative")
        if self.response_fault_rate > 1.0:
            raise ValueError("error_rate + rate_limit_rate + empty_rate + malformed_rate must not exceed 1")

    @property
    def response_fault_rate(self) -> float:
        return self.error_rate + self.rate_limit_rate + self.empty_rate + self.malformed_rate

    @property
    def enabled(self) -> bool:
        return self.response_fault_rate > 0 or self.bad_record_rate > 0 or self.latency_s > 0

    @classmethod
    def mixed(cls, rate: float, *, retry_after_s: float = 0.05, seed: int | None = None) -> FaultConfig:
        """``rate`` of requests fail, spread evenly over the four response faults, and ``rate`` of
        records are corrupted: a convenient "everything goes wrong sometimes" setting."""
        share = rate / 4
        return cls(
            error_rate=share,
            rate_limit_rate=share,
            empty_rate=share,
            malformed_rate=share,
            bad_record_rate=rate,
            retry_after_s=retry_after_s,
            seed=seed,
        )

    def describe(self) -> str:
        if not self.enabled:
            return "no faults"
        parts = [
            f"{name}={getattr(self, name):g}"
            for name in ("error_rate", "rate_limit_rate", "empty_rate", "malformed_rate", "bad_record_rate")
            if getattr(self, name)
        ]
        if self.rate_limit_rate:
            parts.append(f"retry_after_s={self.retry_after_s:g}")
        if self.latency_s:
            parts.append(f"latency_s={self.latency_s:g}@{self.latency_rate:g}")
        return ", ".join(parts)


# Corruptions of one user, each of which the client's model must reject.
def _drop_top(u: dict[str, Any], rng: random.Random) -> str:
    name = rng.choice(TOP_LEVEL_FIELDS)
    u.pop(name, None)
    return f"missing {name}"


def _drop_nested(u: dict[str, Any], rng: random.Random) -> str:
    parent, child = rng.choice(
        [("login", "uuid"), ("location", "street"), ("dob", "date"), ("name", "first"), ("picture", "medium")]
    )
    u[parent].pop(child, None)
    return f"missing {parent}.{child}"


def _age_as_text(u: dict[str, Any], rng: random.Random) -> str:
    u["dob"]["age"] = str(u["dob"]["age"])
    return "dob.age as string"


def _street_number_as_text(u: dict[str, Any], rng: random.Random) -> str:
    u["location"]["street"]["number"] = str(u["location"]["street"]["number"])
    return "location.street.number as string"


def _postcode_as_list(u: dict[str, Any], rng: random.Random) -> str:
    u["location"]["postcode"] = [u["location"]["postcode"]]
    return "location.postcode as list"


def _email_as_number(u: dict[str, Any], rng: random.Random) -> str:
    u["email"] = rng.randrange(10**6)
    return "email as number"


def _bad_uuid(u: dict[str, Any], rng: random.Random) -> str:
    u["login"]["uuid"] = "not-a-uuid"
    return "login.uuid not a uuid"


def _date_as_number(u: dict[str, Any], rng: random.Random) -> str:
    u["registered"]["date"] = rng.randrange(10**9, 2 * 10**9)
    return "registered.date as number"


def _name_as_text(u: dict[str, Any], rng: random.Random) -> str:
    u["name"] = f"{u['name']['first']} {u['name']['last']}"
    return "name as string"


def _bad_gender(u: dict[str, Any], rng: random.Random) -> str:
    u["gender"] = "unknown"
    return "gender not male/female"


def _id_value_as_number(u: dict[str, Any], rng: random.Random) -> str:
    u["id"]["value"] = rng.randrange(10**6)
    return "id.value as number"


def _not_an_object(u: dict[str, Any], rng: random.Random) -> str:
    u.clear()
    u["__replace__"] = None  # marker: the whole record becomes null
    return "record is null"


_CORRUPTIONS: tuple[Callable[[dict[str, Any], random.Random], str], ...] = (
    _drop_top,
    _drop_nested,
    _age_as_text,
    _street_number_as_text,
    _postcode_as_list,
    _email_as_number,
    _bad_uuid,
    _date_as_number,
    _name_as_text,
    _bad_gender,
    _id_value_as_number,
    _not_an_object,
)

_HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


class FaultInjector:
    """Draws faults for requests; thread-safe (one lock around the PRNG)."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {f.value: 0 for f in Fault}
        self.counts["bad_records"] = 0

    def draw(self) -> tuple[Fault, float]:
        """The response fault for the next request, and the latency to add before answering."""
        c = self.config
        with self._lock:
            x = self._rng.random()
            delay = c.latency_s if c.latency_s and self._rng.random() < c.latency_rate else 0.0
            fault = Fault.NONE
            for kind, rate in (
                (Fault.ERROR, c.error_rate),
                (Fault.RATE_LIMIT, c.rate_limit_rate),
                (Fault.EMPTY, c.empty_rate),
                (Fault.MALFORMED, c.malformed_rate),
            ):
                if x < rate:
                    fault = kind
                    break
                x -= rate
            self.counts[fault.value] += 1
        return fault, delay

    def error_status(self) -> int:
        with self._lock:
            return self._rng.choice((500, 502, 503))

    def corrupt(self, users: list[bytes]) -> list[bytes]:
        """Replace ``bad_record_rate`` of the encoded users with corrupted copies."""
        rate = self.config.bad_record_rate
        if not rate:
            return users
        out = list(users)
        with self._lock:
            for i in range(len(out)):
                if self._rng.random() < rate:
                    user = msgspec.json.decode(out[i])
                    self._rng.choice(_CORRUPTIONS)(user, self._rng)
                    out[i] = b"null" if "__replace__" in user else msgspec.json.encode(user)
                    self.counts["bad_records"] += 1
        return out

    def malformed(self, body: bytes) -> tuple[bytes, str]:
        """A broken 200 body: truncated JSON, an HTML error page, or the API's error object."""
        with self._lock:
            kind = self._rng.randrange(3)
            cut = self._rng.randrange(1, max(2, len(body) - 1))
        if kind == 0:
            return body[:cut], "application/json; charset=utf-8"
        if kind == 1:
            return _HTML, "text/html; charset=utf-8"
        return msgspec.json.encode(ERROR_BODY), "application/json; charset=utf-8"
