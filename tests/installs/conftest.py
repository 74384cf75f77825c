"""What the installs tests share: a deployment keyring, and two tenants to link to."""

from __future__ import annotations

import pytest

from core.crypto import Keyring, generate_key
from core.db.engine import Database
from tests.support.tenancy import plan, tenant_on


@pytest.fixture
def keyring() -> Keyring:
    return Keyring([generate_key()])


@pytest.fixture
async def acme(db: Database) -> Database:
    """The database with tenants ``acme`` and ``globex``, both active."""
    await tenant_on(db, "acme", plan())
    await tenant_on(db, "globex", plan())
    return db
