"""The database driver as the services use it: green under eventlet."""

import eventlet
import eventlet.event
from sqlalchemy import text


def test_a_query_waiting_on_the_server_lets_other_green_threads_run(engine):
    """This process is green (tests/conftest.py), as every service is: while one green thread
    waits for PostgreSQL, the others run (eventlet greens psycopg2; docs/architecture.md)."""
    order: list[str] = []
    about_to_query = eventlet.event.Event()

    def query() -> None:
        with engine.connect() as conn:
            about_to_query.send()
            conn.execute(text("SELECT pg_sleep(0.3)"))
        order.append("query answered")

    def other() -> None:
        about_to_query.wait()
        order.append("another green thread ran")

    threads = [eventlet.spawn(query), eventlet.spawn(other)]
    for thread in threads:
        thread.wait()
    assert order == ["another green thread ran", "query answered"]


def _prepared_here(conn) -> list[str]:
    """The statements prepared on this connection's server session, as PREPARE gave them."""
    return list(conn.execute(text("SELECT statement FROM pg_prepared_statements")).scalars())


def test_a_prepared_statement_is_prepared_once_per_connection_and_gives_the_same_rows(engine):
    from sqlalchemy import bindparam, select

    from nameko_services.domain.db import prepared
    from nameko_services.domain.models import tenants

    plain = select(tenants.c.id, tenants.c.name).where(tenants.c.id == bindparam("b_id"))

    def ours(statements: list[str]) -> int:
        return sum("FROM tenants" in s and "tenants.id = $1" in s for s in statements)

    with engine.begin() as conn:
        tenant_id = conn.execute(text(
            "INSERT INTO tenants (name) VALUES ('prepared-statement') RETURNING id")).scalar()
    try:
        with engine.connect() as conn:
            before = len(_prepared_here(conn))
            expected = conn.execute(plain, {"b_id": tenant_id}).all()
            assert expected == [(tenant_id, "prepared-statement")]
            for _ in range(7):  # past PostgreSQL's five custom plans: its generic plan too
                assert conn.execute(prepared(plain), {"b_id": tenant_id}).all() == expected
            assert len(_prepared_here(conn)) == before + 1  # prepared once, run seven times
            assert ours(_prepared_here(conn)) == 1
            conn.rollback()  # a prepared statement outlives a rolled-back transaction
            assert conn.execute(prepared(plain), {"b_id": tenant_id}).all() == expected
            assert len(_prepared_here(conn)) == before + 1
            conn.invalidate()  # a new server session: prepared again, on first use
            conn.rollback()
            assert ours(_prepared_here(conn)) == 0
            assert conn.execute(prepared(plain), {"b_id": tenant_id}).all() == expected
            assert ours(_prepared_here(conn)) == 1
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM tenants WHERE id = :id"), {"id": tenant_id})


def test_a_prepared_statement_declares_its_values_types(engine):
    """A value whose place gives PostgreSQL no type (a SELECT list) is declared with its
    bind's type; percent signs in the SQL stay what they were."""
    from sqlalchemy import String, bindparam, literal, select

    from nameko_services.domain.db import prepared

    statement = prepared(select(bindparam("b_word", type_=String).label("word"),
                                literal("100%", String).label("share"),
                                text("'a%b' LIKE 'a%%b'")))
    with engine.connect() as conn:
        assert conn.execute(statement, {"b_word": "x"}).one() == ("x", "100%", True)
        assert conn.execute(statement, {"b_word": None}).one() == (None, "100%", True)
