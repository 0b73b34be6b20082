"""Every integration test starts with full rate-limit buckets, as each test's app did while the
buckets lived in its process: they are rows of the session's database now (rate_limit_buckets),
and the Flask test client logs every test in from the same address."""

import pytest
from sqlalchemy import text

from tests.integration import rows


@pytest.fixture(autouse=True)
def full_rate_limit_buckets(engine):
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM rate_limit_buckets"))


@pytest.fixture
def tenant(engine):
    """A tenant of its own for the test, deleted (with everything it owns) afterwards."""
    tenant_id = rows.make_tenant(engine)
    yield tenant_id
    rows.delete_tenant(engine, tenant_id)
