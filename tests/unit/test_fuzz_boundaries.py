"""Bad input at every boundary a process of ours reads from, fuzzed (hypothesis): each case gives a clear error
or a rejection with its reason; none crashes the reader. Counts per boundary are in docs/security.md; the
streaming job's own boundary (raw bytes and unknown schema ids produced to users.raw) is fuzzed against
real Kafka and Spark in tests/integration/test_stream.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from userstream.config import Settings, get_settings
from userstream.errors import ConfigError, SourceError
from userstream.monitor.app import cookie_name, create_app
from userstream.monitor.collect import Collector
from userstream.monitor.models import PipelineSnapshot
from userstream.source import SourceClient, UserGenerator
from userstream.source.decode import decode_body, decode_body_lenient
from userstream.stream.rules import Frame, parse_frame, reason_text, record_problems

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
USERS = UserGenerator().users("fuzz", 1, 20)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# strings a broken API might send: huge, NUL, lone surrogates (escaped in JSON), control characters
nasty_text = st.one_of(
    st.text(max_size=30),
    st.just("x" * 20_000),
    st.just("\x00"),
    st.just("a\x00b"),
    st.sampled_from(["\\ud800", "\\udfff", "\\ud83d"]).map(lambda esc: f"__ESC__{esc}"),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=5),
)


def _mutated_user(draw: st.DrawFn) -> object:
    user: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from(USERS))))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(user)))
        user[key] = draw(st.one_of(json_values, nasty_text))
    if draw(st.booleans()):
        user[draw(st.text(max_size=6))] = draw(json_values)  # an extra field
    return user


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["records", "raw", "json", "latin1"]))
    if kind == "raw":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    results = draw(st.lists(st.one_of(json_values, st.composite(_mutated_user)()), max_size=6))
    text = json.dumps({"results": results, "info": draw(json_values)}, ensure_ascii=draw(st.booleans()))
    text = text.replace('"__ESC__\\\\', '"\\').replace("__ESC__\\\\", "\\")  # the lone surrogates, escaped
    return text.encode("latin-1", "replace") if kind == "latin1" else text.encode("utf-8", "surrogatepass")


@settings(FUZZ, max_examples=2000)
@given(body=bodies(), status=st.sampled_from([200, 200, 200, 500, 429, 404]))
def test_source_responses(body: bytes, status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": "application/json"})

    transport = httpx.MockTransport(handler)
    client = SourceClient("http://mock/api/", seed="fuzz", page_size=50, retries=0, rate_limit_wait_s=0,
                          settings=Settings(), transport=transport, sleep=lambda _s: None)  # fmt: skip
    try:
        page = client.fetch_page(1)
    except SourceError as exc:
        assert str(exc).strip(), "a clear error, not an empty one"
        return
    finally:
        client.close()
    try:  # as the client read the page
        results = decode_body(body).results or []
    except msgspec.DecodeError:  # lone surrogates: the lenient parse, each such record rejected alone
        lenient = decode_body_lenient(body)
        assert lenient is not None
        results = lenient.results or []
    assert len(page.accepted) + len(page.rejected) == len(results), "every record is accepted or rejected"
    assert all(r.reason for r in page.rejected), "each rejection says why"


class _Fixed(Collector):
    def __init__(self, s: Settings) -> None:
        super().__init__(s, sections=[])

    def snapshot(self) -> PipelineSnapshot:
        return PipelineSnapshot(taken_at=1.0, stages=[])


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestClient, str]:
    s = Settings(data_dir=tmp_path_factory.mktemp("fuzz"), dashboard_token="the-token")
    return TestClient(create_app(s, _Fixed(s), token="the-token")), cookie_name(s)


paths = st.one_of(
    st.sampled_from(["/", "/api/snapshot", "/metrics", "/healthz", "/static/app.js", "/static/../../etc/passwd",
                     "/static/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2fetc%2fpasswd", "//etc/passwd",
                     "/static/" + "../" * 20 + "etc/passwd", "/api/../static/../../pyproject.toml"]),
    st.text(alphabet="abc./%-_~", max_size=40).map(lambda p: "/" + p),
)  # fmt: skip
# header and cookie values are ASCII on the wire (the client cannot even send others); the query takes any text
tokens = st.one_of(st.none(), st.just("the-token"), st.text(st.characters(min_codepoint=33, max_codepoint=126),
                                                             max_size=20), st.just("x" * 10_000))  # fmt: skip


@settings(FUZZ, max_examples=2500)
@given(path=paths, method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]), token=tokens, where=st.sampled_from(
    ["query", "bearer", "cookie"]), query=st.text(max_size=30) | st.just("q=" + "x" * 20_000))  # fmt: skip
def test_dashboard_requests(
    dashboard: tuple[TestClient, str], path: str, method: str, token: str | None, where: str, query: str
) -> None:
    client, cookie = dashboard
    params: dict[str, str] = {"extra": query}
    headers: dict[str, str] = {}
    client.cookies.clear()
    if token is not None:
        if where == "query":
            params["token"] = token + query[:3]  # any text
        elif where == "bearer":
            headers["authorization"] = f"Bearer {token}"
        else:
            client.cookies.set(cookie, token)
    response = client.request(method, f"http://testserver{path}", params=params, headers=headers)
    assert response.status_code < 500, (path, response.status_code, response.text[:200])
    assert b"root:x:0" not in response.content and b"[project]" not in response.content, "no file outside static/"
    if token != "the-token" and path not in ("/healthz",) and response.status_code != 404:
        assert response.status_code in (401, 405), (path, method, response.status_code)


FIELDS = [name for name in Settings.model_fields if name not in ("data_dir",)]


ODD = ["-1", "0", "1e999", "nan", "true", "yes", "", " ", "{", "[]", "1,2"]


@settings(FUZZ, max_examples=2500)
@given(field=st.sampled_from(FIELDS), value=st.one_of(st.text(max_size=20), st.sampled_from(ODD)))
def test_invalid_environment_values(field: str, value: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    if "\x00" in value:
        return  # an environment variable cannot hold NUL
    name = f"USERSTREAM_{field.upper()}"
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        try:
            get_settings.cache_clear()
            get_settings()
        except ConfigError as exc:
            assert name in str(exc) and exc.fix, "names the variable and says how to fix it"
    finally:
        get_settings.cache_clear()
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@settings(FUZZ, max_examples=2000)
@given(value=st.one_of(st.none(), st.binary(max_size=64), st.binary(max_size=8).map(lambda b: b"\x00" + b)))
def test_kafka_values_the_job_frames(value: bytes | None) -> None:
    frame = parse_frame(value)
    assert isinstance(frame, Frame) or (isinstance(frame, str) and frame), "a frame, or the reason it is not one"


KEYS = ["id", "email", "dob", "registered_date", "first_name", "gender", "nat", "x"]


@settings(FUZZ, max_examples=1500)
@given(record=st.dictionaries(st.sampled_from(KEYS), json_values | nasty_text, max_size=8))
def test_records_the_job_checks(record: dict[str, object]) -> None:
    problems = record_problems(record)
    assert all(isinstance(p, str) and p for p in problems)
    assert (reason_text(problems) is None) == (not problems)


def test_a_settings_error_is_a_config_error_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERSTREAM_KAFKA_PORT", "not-a-port")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="USERSTREAM_KAFKA_PORT"):
        get_settings()
    get_settings.cache_clear()


def test_a_record_that_is_not_utf8_is_rejected_and_its_page_kept() -> None:
    """Found by the fuzzing above: one such record failed the whole page (UnicodeDecodeError), every retry."""
    good = json.dumps(USERS[0]).encode()
    body = b'{"results": [' + good + b', "\x80"], "info": {"page": 1}}'
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    with SourceClient("http://mock/api/", seed="fuzz", page_size=2, retries=0, settings=Settings(),
                      transport=transport, sleep=lambda _s: None) as client:  # fmt: skip
        page = client.fetch_page(1)
    assert len(page.accepted) == 1 and [r.index for r in page.rejected] == [1]
    assert "not valid UTF-8" in page.rejected[0].reason
    assert "\\x80" in str(page.rejected[0].raw), "kept, escaped"
