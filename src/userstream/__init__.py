"""userstream: a realtime random-user pipeline, API -> Postgres -> Kafka -> Spark -> Cassandra."""

from userstream.config import Settings, get_settings
from userstream.errors import (
    ConfigError,
    InstallError,
    PortInUseError,
    ServiceError,
    SourceError,
    UserstreamError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "InstallError",
    "PortInUseError",
    "ServiceError",
    "Settings",
    "SourceError",
    "UserstreamError",
    "__version__",
    "get_settings",
]
