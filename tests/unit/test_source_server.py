"""The compatible server: parameters, conformance to the documented 1.4 shape, formats, routes."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from types import NoneType
from typing import Any
from xml.etree import ElementTree

import httpx
import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from userstream.model import NATIONALITIES, ApiUser
from userstream.source.api import Query, render
from userstream.source.generator import UserGenerator
from userstream.source.server import serve_in_thread

GEN = UserGenerator()

# The documented 1.4 user, field by field (reference/randomuser-api.md): key order and types.
SHAPE: dict[str, Any] = {
    "gender": str,
    "name": {"title": str, "first": str, "last": str},
    "location": {
        "street": {"number": int, "name": str},
        "city": str,
        "state": str,
        "country": str,
        "postcode": (int, str),
        "coordinates": {"latitude": str, "longitude": str},
        "timezone": {"offset": str, "description": str},
    },
    "email": str,
    "login": {"uuid": str, "username": str, "password": str, "salt": str, "md5": str, "sha1": str, "sha256": str},
    "dob": {"date": str, "age": int},
    "registered": {"date": str, "age": int},
    "phone": str,
    "cell": str,
    "id": {"name": str, "value": (str, NoneType)},
    "picture": {"large": str, "medium": str, "thumbnail": str},
    "nat": str,
}
INFO_SHAPE: dict[str, Any] = {"seed": str, "results": int, "page": int, "version": str}


def _conforms(value: Any, shape: Any, where: str = "") -> None:
    if isinstance(shape, dict):
        assert isinstance(value, dict), where
        assert list(value) == list(shape), f"{where}: keys {list(value)} != {list(shape)}"
        for k, sub in shape.items():
            _conforms(value[k], sub, f"{where}.{k}")
    else:
        assert not isinstance(value, bool), where  # bool is an int in Python, never in the API
        assert isinstance(value, shape), f"{where}: {type(value).__name__}"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve_in_thread(generator=GEN) as base:
        yield base


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def test_conformance_every_nationality(url: str, http: httpx.Client) -> None:
    for nat in NATIONALITIES:
        r = http.get(url, params={"results": 50, "seed": "conf", "nat": nat})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        doc = r.json()
        assert list(doc) == ["results", "info"]
        _conforms(doc["info"], INFO_SHAPE, "info")
        assert doc["info"] == {"seed": "conf", "results": 50, "page": 1, "version": "1.4"}
        for user in doc["results"]:
            _conforms(user, SHAPE, nat)


def test_versioned_and_unversioned_paths(url: str, http: httpx.Client) -> None:
    params = {"results": 3, "seed": "paths"}
    bodies = {
        http.get(url.replace("/api/", path), params=params).content
        for path in ("/api/", "/api", "/api/1.4/", "/api/1.4")
    }
    assert len(bodies) == 1  # same request, same bytes, whichever spelling
    for path in ("/api/1.3/", "/api/2.0/", "/api/latest/", "/nothing"):
        assert http.get(url.replace("/api/", path)).status_code == 404
    assert http.post(url).status_code == 405
    assert http.get(url.replace("/api/", "/healthz")).text == "ok"
    head = http.head(url, params=params)
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0


def test_deterministic_bytes_over_http(url: str, http: httpx.Client) -> None:
    params = {"results": 1000, "seed": "bytes", "page": 12, "nat": "FR,IN,UA"}
    assert http.get(url, params=params).content == http.get(url, params=params).content
    # ... and they are the generator's bytes, whatever server instance serves them.
    expected = render(Query.parse([(k, str(v)) for k, v in params.items()]), UserGenerator())
    assert http.get(url, params=params).content == expected.body


def test_results_bounds_and_fallbacks(url: str, http: httpx.Client) -> None:
    def count(value: str) -> int:
        return len(http.get(url, params={"results": value, "seed": "n"}).json()["results"])

    assert count("5000") == 5000
    for bad in ("0", "5001", "-3", "abc", "", "1.5"):
        assert count(bad) == 1
    doc = http.get(url, params={"results": 2, "seed": "n", "page": "zero"}).json()
    assert doc["info"]["page"] == 1


def test_seedless_requests_get_a_reusable_seed(url: str, http: httpx.Client) -> None:
    first = http.get(url, params={"results": 5}).json()
    seed = first["info"]["seed"]
    assert len(seed) == 16
    again = http.get(url, params={"results": 5, "seed": seed}).json()
    assert again["results"] == first["results"]


def test_gender_and_nat_filters(url: str, http: httpx.Client) -> None:
    users = http.get(url, params={"results": 200, "gender": "female", "nat": "gb,fr,XX"}).json()["results"]
    assert {u["gender"] for u in users} == {"female"}
    assert {u["nat"] for u in users} == {"GB", "FR"}
    users = http.get(url, params={"results": 100, "nationality": "DK"}).json()["results"]
    assert {u["nat"] for u in users} == {"DK"}
    users = http.get(url, params={"results": 300, "nat": "XX"}).json()["results"]  # invalid -> random
    assert len({u["nat"] for u in users}) > 10
    # with a seed, gender is ignored (as documented): the seed alone defines the users
    seeded = {"results": 50, "seed": "g"}
    assert http.get(url, params={**seeded, "gender": "male"}).content == http.get(url, params=seeded).content


def test_inc_exc_and_noinfo(url: str, http: httpx.Client) -> None:
    doc = http.get(url, params={"results": 3, "seed": "i", "inc": "name,nat,bogus"}).json()
    assert all(list(u) == ["name", "nat"] for u in doc["results"])
    doc = http.get(url, params={"results": 3, "seed": "i", "exc": "login,location,id"}).json()
    assert all(not {"login", "location", "id"} & set(u) and "email" in u for u in doc["results"])
    doc = http.get(url, params={"results": 3, "seed": "i", "noinfo": ""}).json()
    assert list(doc) == ["results"]
    full = http.get(url, params={"results": 3, "seed": "i"}).json()["results"]
    assert [u["name"] for u in doc["results"]] == [u["name"] for u in full]


def test_formats(url: str, http: httpx.Client) -> None:
    base = {"results": 4, "seed": "fmt"}
    full = http.get(url, params=base).json()

    pretty = http.get(url, params={**base, "format": "pretty"})
    assert pretty.text.startswith('{\n  "results": [') and pretty.json() == full

    table = list(csv.DictReader(io.StringIO(http.get(url, params={**base, "fmt": "csv"}).text)))
    assert len(table) == 4
    assert table[0]["name.first"] == full["results"][0]["name"]["first"]
    assert table[0]["location.street.number"] == str(full["results"][0]["location"]["street"]["number"])

    r = http.get(url, params={**base, "format": "yaml"})
    assert r.headers["content-type"].startswith("application/x-yaml")
    assert yaml.safe_load(r.text) == full

    r = http.get(url, params={**base, "format": "xml"})
    root = ElementTree.fromstring(r.content)
    assert root.tag == "user"
    results = root.findall("results")
    assert [e.findtext("email") for e in results] == [u["email"] for u in full["results"]]
    assert root.findtext("info/version") == "1.4"

    assert http.get(url, params={**base, "format": "bogus"}).json() == full


def test_password_parameter(url: str, http: httpx.Client) -> None:
    users = http.get(url, params={"results": 50, "seed": "pw", "password": "number,6-6"}).json()["results"]
    assert all(u["login"]["password"].isdigit() and len(u["login"]["password"]) == 6 for u in users)


def test_query_parse_defaults() -> None:
    q = Query.parse([])
    assert (q.results, q.seed, q.page, q.gender, q.nats, q.fmt, q.noinfo) == (1, None, 1, None, (), "json", False)
    q = Query.parse([("RESULTS", "10"), ("Nat", "us,GB"), ("gender", "FEMALE"), ("fmt", "CSV")])
    assert (q.results, q.nats, q.gender, q.fmt) == (10, ("GB", "US"), "female", "csv")
    assert Query.parse([("results", "3"), ("results", "7")]).results == 7  # last one wins


def test_render_without_server_is_the_same_bytes() -> None:
    q = Query.parse([("results", "20"), ("seed", "r")])
    body = render(q, GEN).body
    doc = msgspec.json.decode(body)
    assert doc["info"]["results"] == 20 and len(doc["results"]) == 20


def test_streamed_body_equals_rendered_body() -> None:
    from userstream.source.api import stream, streamable

    for params in ([("results", "1234"), ("seed", "s")], [("results", "7"), ("seed", "s"), ("noinfo", "")]):
        q = Query.parse(params)
        assert streamable(q)
        assert b"".join(stream(q, GEN, chunk=100)) == render(q, GEN).body
    assert not streamable(Query.parse([("inc", "name")]))
    assert not streamable(Query.parse([("format", "csv")]))


PARAM_NAMES = ["results", "seed", "page", "gender", "nat", "nationality", "inc", "exc", "format", "fmt",
               "password", "noinfo", "bogus"]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=st.lists(
        st.tuples(
            st.sampled_from(PARAM_NAMES),
            st.one_of(
                st.text(max_size=8),
                st.integers(-5, 60).map(str),
                st.lists(st.sampled_from([*NATIONALITIES, "xx"]), max_size=3).map(",".join),
                st.lists(st.sampled_from(["name", "login", "nat", "dob", "x"]), max_size=3).map(",".join),
                st.sampled_from(["json", "pretty", "csv", "yaml", "xml", "male", "female", "upper,4-9"]),
            ),
        ),
        max_size=6,
    )
)
def test_any_parameter_mix_answers_and_whole_users_validate(params: list[tuple[str, str]]) -> None:
    q = Query.parse(params)  # never raises: bad values fall back to defaults
    assert 1 <= q.results <= 5000 and q.page >= 1
    out = render(q, GEN)
    assert out.body
    if q.fmt in ("json", "pretty"):
        doc = msgspec.json.decode(out.body)
        assert len(doc["results"]) == q.results
        for user in doc["results"]:
            if not q.projected:
                ApiUser.model_validate(user)
            assert all(q.keep(k) for k in user)
