from __future__ import annotations

import os
from pathlib import Path

# Tests keep their state apart from a user's `.userstream/` (same ports: stop your stack first).
os.environ.setdefault("USERSTREAM_DATA_DIR", str(Path(__file__).resolve().parents[1] / ".userstream-test"))
