"""Fixtures every test directory may use: a real PostgreSQL server (tests/postgres.py) and a real
S3-compatible object store (tests/objectstore.py). Test ids that stay the same from one collection to
the next (`pytest_make_parametrize_id`)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.objectstore import s3_log, s3_server
from tests.postgres import postgres_dsn, postgres_server

__all__ = ["postgres_dsn", "postgres_server", "s3_log", "s3_server"]


#: The first bytes of a gzip member (RFC 1952).
GZIP_MAGIC = b"\x1f\x8b"


def pytest_make_parametrize_id(config: pytest.Config, val: Any, argname: str) -> str | None:
    """``gzipped`` for a gzip-compressed parameter, not its bytes: their header holds the time they
    were compressed (`gzip.compress`), so the id would change from one collection to the next. The
    pytest-xdist workers each collect the suite and must find the same ids (`make test`), and
    ``--last-failed`` must find a failed test again. pytest numbers ids that come out the same."""
    if isinstance(val, bytes) and val.startswith(GZIP_MAGIC):
        return "gzipped"
    return None
