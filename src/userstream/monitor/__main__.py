"""``python -m userstream.monitor``: the dashboard server, as run by the supervised DashboardService."""

from __future__ import annotations

import sys

from userstream.config import get_settings
from userstream.errors import UserstreamError
from userstream.monitor.server import serve


def main() -> None:
    try:
        serve(get_settings(), announce=lambda line: print(line, flush=True), show_token=False)
    except UserstreamError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
