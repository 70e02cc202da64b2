"""Unit tests are hermetic: the developer's or CI's USERSTREAM_* settings must not change what they see."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from userstream.config import get_settings


@pytest.fixture(autouse=True)
def _default_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("USERSTREAM_") and name != "USERSTREAM_DATA_DIR":
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
