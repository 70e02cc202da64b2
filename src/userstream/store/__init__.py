"""Storage schemas: PostgreSQL landing zone and Cassandra serving tables."""

from userstream.store.cassandra import apply_cassandra_schema
from userstream.store.postgres import apply_postgres_schema

__all__ = ["apply_cassandra_schema", "apply_postgres_schema"]
