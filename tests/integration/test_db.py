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
