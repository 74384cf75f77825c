"""What the benchmarks share: the percentile they report, and a scratch PostgreSQL
database for those that run on it.

The scripts run as ``python benchmarks/<name>.py``, so this module is imported by its
own name (``from figures import percentile``), from the scripts' directory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def create_database(server_url: str) -> str:
    """A new, empty database on the PostgreSQL server of ``server_url``; its URL."""
    name = f"tenantry_bench_{uuid.uuid4().hex[:8]}"
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return make_url(server_url).set(drivername="postgresql+psycopg", database=name
                                    ).render_as_string(hide_password=False)


def drop_database(server_url: str, url: str) -> None:
    """Drop the database ``create_database`` made, whoever is still connected."""
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        name = make_url(url).database
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new database on ``server_url``'s server for as long as the context lasts."""
    url = create_database(server_url)
    try:
        yield url
    finally:
        drop_database(server_url, url)
