"""Fixtures every test directory may use: a real PostgreSQL server (tests/postgres.py)."""

from tests.postgres import postgres_dsn, postgres_server

__all__ = ["postgres_dsn", "postgres_server"]
