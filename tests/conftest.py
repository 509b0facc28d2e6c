"""Fixtures every test directory may use: a real PostgreSQL server (tests/postgres.py) and a real
S3-compatible object store (tests/objectstore.py)."""

from tests.objectstore import s3_log, s3_server
from tests.postgres import postgres_dsn, postgres_server

__all__ = ["postgres_dsn", "postgres_server", "s3_log", "s3_server"]
