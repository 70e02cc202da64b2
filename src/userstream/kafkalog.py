"""librdkafka's own log lines go to Python logging (hence the services' log files), never straight to stderr.

Without a ``logger`` entry a confluent_kafka client prints lines such as ``%6|...|BGQUEUE|...`` on the
process's stderr, i.e. on the console of ``make run``. Every client the project creates passes its config
through :func:`with_logger`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["kafka_logger", "with_logger"]


def kafka_logger(client: str) -> logging.Logger:
    """The logger of one kind of client: ``userstream.kafka.<client>``."""
    return logging.getLogger(f"userstream.kafka.{client}")


def with_logger(config: Mapping[str, Any], client: str) -> dict[str, Any]:
    """``config`` plus the ``logger`` entry routing this client's librdkafka logs to Python logging.

    confluent_kafka then hands the lines over on the client's ``poll()`` (or ``flush()``), in the calling
    thread, instead of librdkafka writing them to stderr from its own threads.
    """
    return {**config, "logger": kafka_logger(client)}
