"""Every integration test starts with full rate-limit buckets, as each test's app did while the
buckets lived in its process: they are rows of the session's database now (rate_limit_buckets),
and the Flask test client logs every test in from the same address."""

import pytest
from sqlalchemy import text


@pytest.fixture(autouse=True)
def full_rate_limit_buckets(engine):
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM rate_limit_buckets"))
