"""The API user model (faithful, strict) and the flat row."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from userstream.model import ApiUser, UserRow, to_row, validate_user, validation_reason

SAMPLE: dict[str, Any] = {
    "gender": "female",
    "name": {"title": "Miss", "first": "Jennie", "last": "Nichols"},
    "location": {
        "street": {"number": 8929, "name": "Valwood Pkwy"},
        "city": "Billings",
        "state": "Michigan",
        "country": "United States",
        "postcode": 63104,
        "coordinates": {"latitude": "-69.8246", "longitude": "134.8719"},
        "timezone": {"offset": "+9:30", "description": "Adelaide, Darwin"},
    },
    "email": "jennie.nichols@example.com",
    "login": {
        "uuid": "7a0eed16-9430-4d68-901f-c0d4c1c3bf00",
        "username": "yellowpeacock117",
        "password": "addison",
        "salt": "sld1yGtd",
        "md5": "ab54ac4c0be9480ae8fa5e9e2a5196a3",
        "sha1": "edcf2ce613cbdea349133c52dc2f3b83168dc51b",
        "sha256": "48df5229235ada28389b91e60a935e4f9b73eb4bdb855ef9258a1751f10bdc5d",
    },
    "dob": {"date": "1992-03-08T15:13:16.688Z", "age": 30},
    "registered": {"date": "2007-07-09T05:51:59.390Z", "age": 14},
    "phone": "(272) 790-0888",
    "cell": "(489) 330-2385",
    "id": {"name": "SSN", "value": "405-88-3636"},
    "picture": {
        "large": "https://randomuser.me/api/portraits/men/75.jpg",
        "medium": "https://randomuser.me/api/portraits/med/men/75.jpg",
        "thumbnail": "https://randomuser.me/api/portraits/thumb/men/75.jpg",
    },
    "nat": "US",
}


def _with(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SAMPLE)
    *parents, leaf = path.split(".")
    target = doc
    for p in parents:
        target = target[p]
    target[leaf] = value
    return doc


def _without(path: str) -> dict[str, Any]:
    doc = copy.deepcopy(SAMPLE)
    *parents, leaf = path.split(".")
    target = doc
    for p in parents:
        target = target[p]
    del target[leaf]
    return doc


def test_documented_sample_validates() -> None:
    user = validate_user(SAMPLE)
    assert user.location.postcode == 63104
    assert user.login.uuid == UUID("7a0eed16-9430-4d68-901f-c0d4c1c3bf00")
    assert user.dob.date == datetime(1992, 3, 8, 15, 13, 16, 688000, tzinfo=UTC)


@pytest.mark.parametrize("postcode", [63104, "SW1A 1AA", "0150"])
def test_postcode_is_int_or_string(postcode: int | str) -> None:
    assert validate_user(_with("location.postcode", postcode)).location.postcode == postcode


def test_id_value_may_be_null() -> None:
    user = validate_user(_with("id", {"name": "", "value": None}))
    assert user.id.value is None


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("dob.age", "30"),  # lax mode would coerce; the API never sends it
        ("location.street.number", "8929"),
        ("location.postcode", 631.04),
        ("location.postcode", [63104]),
        ("email", 12345),
        ("login.uuid", "not-a-uuid"),
        ("registered.date", 1184000000),  # a unix time is not the API's date
        ("gender", "unknown"),
        ("nat", "usa"),
        ("id.value", 42),
        ("name", "Jennie Nichols"),
        ("dob.age", True),
    ],
)
def test_wrong_types_are_rejected(path: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        validate_user(_with(path, value))
    assert path.split(".")[0] in validation_reason(info.value)


@pytest.mark.parametrize("path", ["email", "login", "login.md5", "location.street", "dob.date", "nat", "id.value"])
def test_missing_fields_are_rejected(path: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_user(_without(path))
    reason = validation_reason(info.value)
    assert path in reason and "Field required" in reason


def test_validation_reason_is_short_and_capped() -> None:
    with pytest.raises(ValidationError) as info:
        validate_user({})
    reason = validation_reason(info.value, limit=3)
    assert reason.count(";") == 3 and reason.endswith("more")


def test_unknown_extra_fields_are_ignored() -> None:
    assert validate_user({**SAMPLE, "new_field": 1}).nat == "US"


def test_flat_row_mapping() -> None:
    fetched = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    row = to_row(ApiUser.model_validate(SAMPLE), fetched)
    assert row == UserRow(
        id=UUID("7a0eed16-9430-4d68-901f-c0d4c1c3bf00"),
        first_name="Jennie",
        last_name="Nichols",
        gender="female",
        address="8929 Valwood Pkwy, Billings, Michigan, United States",
        post_code="63104",
        email="jennie.nichols@example.com",
        username="yellowpeacock117",
        dob=datetime(1992, 3, 8, 15, 13, 16, 688000, tzinfo=UTC),
        registered_date=datetime(2007, 7, 9, 5, 51, 59, 390000, tzinfo=UTC),
        phone="(272) 790-0888",
        picture="https://randomuser.me/api/portraits/med/men/75.jpg",
        nat="US",
        fetched_at=fetched,
    )
    assert row.dob.tzinfo is UTC


def test_row_forms_for_inserts() -> None:
    fetched = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    row = to_row(validate_user(_with("location.postcode", "SW1A 1AA")), fetched)
    assert list(row.as_db_dict()) == list(UserRow.COLUMNS)
    assert row.as_db_tuple() == tuple(row.as_db_dict().values())
    assert row.post_code == "SW1A 1AA"
    as_json = row.as_json_dict()
    assert as_json["id"] == "7a0eed16-9430-4d68-901f-c0d4c1c3bf00"
    assert as_json["dob"] == "1992-03-08T15:13:16.688Z"
    assert as_json["fetched_at"] == "2026-01-02T03:04:05.678Z"
    # Round trips: both the native and the JSON form parse back to the same row.
    assert UserRow.parse(row.as_db_dict()) == row
    assert UserRow.parse(as_json) == row


def test_row_parse_rejects_bad_input() -> None:
    fetched = datetime(2026, 1, 2, tzinfo=UTC)
    data = to_row(validate_user(SAMPLE), fetched).as_json_dict()
    with pytest.raises(ValidationError):
        UserRow.parse({**data, "id": "nope"})
    with pytest.raises(ValidationError):
        UserRow.parse({**data, "dob": "1992-03-08T15:13:16"})  # naive: no zone
    with pytest.raises(ValidationError):
        UserRow.parse({k: v for k, v in data.items() if k != "email"})
