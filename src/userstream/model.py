"""The user record in its two shapes.

* :class:`ApiUser` — one element of ``results`` in the randomuser.me **1.4** response, typed faithfully:
  ``location.postcode`` is an int *or* a string, ``id.value`` may be ``null``, dates are ISO-8601 strings.
  Numbers are strict (``"42"`` is not an age) so a wrongly typed record is rejected, not coerced.
* :class:`UserRow` — the flat record every later stage stores (Postgres, Kafka/Avro, Spark, Cassandra):
  the seed project's columns plus ``nat`` and ``fetched_at``; ``id`` is ``login.uuid``, a natural key that
  makes replays idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)

__all__ = [
    "API_VERSION",
    "NATIONALITIES",
    "TOP_LEVEL_FIELDS",
    "ApiUser",
    "Coordinates",
    "DatedAge",
    "Identity",
    "Location",
    "Login",
    "Name",
    "Picture",
    "Street",
    "Timezone",
    "UserRow",
    "to_row",
    "validate_user",
    "validation_reason",
]

API_VERSION = "1.4"

#: Every nationality the 1.4 API knows, in its documentation order.
NATIONALITIES: tuple[str, ...] = (
    "AU", "BR", "CA", "CH", "DE", "DK", "ES", "FI", "FR", "GB", "IE",
    "IN", "IR", "MX", "NL", "NO", "NZ", "RS", "TR", "UA", "US",
)  # fmt: skip

#: The top-level fields of a user, in the order the API emits them (also the names ``inc``/``exc`` take).
TOP_LEVEL_FIELDS: tuple[str, ...] = (
    "gender", "name", "location", "email", "login", "dob",
    "registered", "phone", "cell", "id", "picture", "nat",
)  # fmt: skip


def _only_str(value: object) -> object:
    # Lax datetime parsing would also accept a unix number; the API only ever sends ISO strings.
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 date string")
    return value


IsoDate = Annotated[AwareDatetime, BeforeValidator(_only_str)]


class _Part(BaseModel):
    # extra="ignore": the live API may add fields; we keep the raw payload elsewhere anyway.
    model_config = ConfigDict(frozen=True, extra="ignore")


class Name(_Part):
    title: StrictStr
    first: StrictStr
    last: StrictStr


class Street(_Part):
    number: StrictInt
    name: StrictStr


class Coordinates(_Part):
    latitude: StrictStr
    longitude: StrictStr


class Timezone(_Part):
    offset: StrictStr
    description: StrictStr


class Location(_Part):
    street: Street
    city: StrictStr
    state: StrictStr
    country: StrictStr
    # An int for most nationalities, a string where postcodes have letters or leading zeros (GB, CA, NL...).
    postcode: StrictInt | StrictStr
    coordinates: Coordinates
    timezone: Timezone


class Login(_Part):
    uuid: UUID
    username: StrictStr
    password: StrictStr
    salt: StrictStr
    md5: StrictStr
    sha1: StrictStr
    sha256: StrictStr


class DatedAge(_Part):
    date: IsoDate
    age: Annotated[StrictInt, Field(ge=0)]


class Identity(_Part):
    name: StrictStr
    # null (with name "") for nationalities without a national id in the API: IR, NZ, TR, UA.
    value: StrictStr | None


class Picture(_Part):
    large: StrictStr
    medium: StrictStr
    thumbnail: StrictStr


class ApiUser(_Part):
    """One user of a randomuser.me 1.4 response (all twelve top-level fields required)."""

    gender: Literal["male", "female"]
    name: Name
    location: Location
    email: Annotated[StrictStr, Field(min_length=3)]
    login: Login
    dob: DatedAge
    registered: DatedAge
    phone: StrictStr
    cell: StrictStr
    id: Identity
    picture: Picture
    nat: Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}$")]


@dataclass(frozen=True, slots=True)
class UserRow:
    """The flat record the rest of the pipeline uses; field names are the storage column names.

    A plain frozen dataclass: :func:`to_row` builds millions of these from already validated users, where
    a pydantic model's construction cost would dominate. Use :meth:`parse` for untrusted input.
    """

    #: Column order for positional inserts (``COPY``, ``executemany``, Cassandra prepared statements).
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "first_name", "last_name", "gender", "address", "post_code", "email",
        "username", "dob", "registered_date", "phone", "picture", "nat", "fetched_at",
    )  # fmt: skip

    id: UUID
    first_name: str
    last_name: str
    gender: str
    address: str
    post_code: str
    email: str
    username: str
    dob: datetime
    registered_date: datetime
    phone: str
    picture: str
    nat: str
    fetched_at: datetime

    @classmethod
    def parse(cls, data: object) -> UserRow:
        """Validate a mapping (e.g. a decoded Avro/JSON row) into a row; raises ``ValidationError``."""
        checked = _RowSchema.model_validate(data)
        values = {c: getattr(checked, c) for c in cls.COLUMNS}
        for c in ("dob", "registered_date", "fetched_at"):
            values[c] = values[c].astimezone(UTC)
        return cls(**values)

    def as_db_dict(self) -> dict[str, Any]:
        """Column name -> native value (UUID, aware datetime, str): what psycopg/cassandra-driver bind."""
        return {c: getattr(self, c) for c in self.COLUMNS}

    def as_db_tuple(self) -> tuple[Any, ...]:
        """Values in :attr:`COLUMNS` order."""
        return tuple(getattr(self, c) for c in self.COLUMNS)

    def as_json_dict(self) -> dict[str, str]:
        """JSON-safe form: uuid as text, dates as ISO-8601 with milliseconds and ``Z``."""
        out: dict[str, str] = {}
        for c in self.COLUMNS:
            v = getattr(self, c)
            out[c] = _iso_z(v) if isinstance(v, datetime) else str(v)
        return out


class _RowSchema(BaseModel):
    # The validation schema behind UserRow.parse: aware datetimes, a real UUID, strings elsewhere.
    model_config = ConfigDict(extra="forbid")

    id: UUID
    first_name: StrictStr
    last_name: StrictStr
    gender: StrictStr
    address: StrictStr
    post_code: StrictStr
    email: StrictStr
    username: StrictStr
    dob: AwareDatetime
    registered_date: AwareDatetime
    phone: StrictStr
    picture: StrictStr
    nat: StrictStr
    fetched_at: AwareDatetime


def _iso_z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def to_row(user: ApiUser, fetched_at: datetime | None = None) -> UserRow:
    """Flatten a validated API user; ``fetched_at`` defaults to now (UTC)."""
    loc = user.location
    return UserRow(
        id=user.login.uuid,
        first_name=user.name.first,
        last_name=user.name.last,
        gender=user.gender,
        address=f"{loc.street.number} {loc.street.name}, {loc.city}, {loc.state}, {loc.country}",
        post_code=str(loc.postcode),
        email=user.email,
        username=user.login.username,
        # astimezone: one tzinfo (datetime.UTC) downstream, whatever offset the API wrote.
        dob=user.dob.date.astimezone(UTC),
        registered_date=user.registered.date.astimezone(UTC),
        phone=user.phone,
        picture=user.picture.medium,
        nat=user.nat,
        fetched_at=fetched_at if fetched_at is not None else datetime.now(UTC),
    )


def validate_user(raw: object) -> ApiUser:
    """Validate one decoded JSON user; raises :class:`pydantic.ValidationError`."""
    return ApiUser.model_validate(raw)


def validation_reason(exc: ValidationError, limit: int = 5) -> str:
    """A short one-line reason such as ``login.md5: Field required; dob.age: Input should be ...``."""
    parts = []
    errors = exc.errors(include_url=False)
    for err in errors[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "<record>"
        parts.append(f"{where}: {err['msg']}")
    if len(errors) > limit:
        parts.append(f"... {len(errors) - limit} more")
    return "; ".join(parts)
