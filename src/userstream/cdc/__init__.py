"""Change-data-capture: Postgres staging.users -> Debezium -> Kafka users topic (Avro, via the registry)."""

from userstream.cdc.connector import CONNECTOR_NAME, connector_config, connector_status, ensure_connector
from userstream.cdc.schemas import SchemaIncompatibleError, ensure_subject, register_value_schema
from userstream.cdc.topics import ensure_topics

__all__ = [
    "CONNECTOR_NAME",
    "SchemaIncompatibleError",
    "connector_config",
    "connector_status",
    "ensure_connector",
    "ensure_subject",
    "ensure_topics",
    "register_value_schema",
]
