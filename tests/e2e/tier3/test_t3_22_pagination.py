"""T3.22 — 100 executions paged by 20: exact totals, next_offset, newest first, no duplicates,
no gaps; and the same walk while new executions arrive, pinned with `max_id`
(docs/api.md, "Pagination").
"""

from __future__ import annotations

import threading

from tests.support.e2e import wait_until
from tests.support.flows import ts
from tests.support.orchestration import execute

COUNT, LIMIT = 100, 20


def page(api, offset, **params):
    response = api.get("/api/v1/executions", params={"limit": LIMIT, "offset": offset, **params})
    assert response.status_code == 200, response.text
    return response.json()


def walk(api, between=lambda: None, **params):
    """Every page from offset 0 following next_offset; returns (items, pages)."""
    items, pages, offset = [], [], 0
    while offset is not None:
        body = page(api, offset, **params)
        pages.append(body)
        items += body["data"]
        offset = body["pagination"]["next_offset"]
        between()
    return items, pages


def newest_first(items):
    keys = [(ts(i["created_at"]), i["id"]) for i in items]
    return keys == sorted(keys, reverse=True)


def test_a_hundred_executions_page_by_twenty_exactly(api):
    created = {execute(api, "core.noop")["id"] for _ in range(COUNT)}
    assert len(created) == COUNT

    items, pages = walk(api)

    assert len(pages) == COUNT // LIMIT
    for number, body in enumerate(pages):
        assert len(body["data"]) == LIMIT
        assert body["pagination"]["total"] == COUNT
        assert body["pagination"]["limit"] == LIMIT
        assert body["pagination"]["offset"] == number * LIMIT
        expected_next = (number + 1) * LIMIT if number + 1 < len(pages) else None
        assert body["pagination"]["next_offset"] == expected_next
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids))  # no duplicates
    assert set(ids) == created  # no gaps
    assert newest_first(items)
    assert page(api, COUNT)["data"] == []  # past the end: empty, same total
    assert page(api, COUNT)["pagination"]["total"] == COUNT


def test_a_walk_pinned_with_max_id_is_stable_while_new_executions_arrive(api):
    created = {execute(api, "core.noop")["id"] for _ in range(COUNT)}
    top = page(api, 0)["data"][0]["id"]
    assert top == max(created)

    arrived: list[int] = []
    stop = threading.Event()

    def keep_creating():
        while not stop.is_set() and len(arrived) < 60:
            arrived.append(execute(api, "core.noop")["id"])

    writer = threading.Thread(target=keep_creating, daemon=True)
    writer.start()
    seen_per_page: list[int] = []

    def let_some_arrive():
        seen_per_page.append(len(arrived))
        wait_until(lambda: len(arrived) >= seen_per_page[-1] + 3 or not writer.is_alive(),
                   timeout=30, message="new executions to arrive during the walk")

    try:
        items, pages = walk(api, between=let_some_arrive, max_id=top)
    finally:
        stop.set()
        writer.join(timeout=60)

    assert arrived and min(arrived) > top  # new ones really arrived during the walk
    assert seen_per_page[-1] > seen_per_page[0]
    assert all(body["pagination"]["total"] == COUNT for body in pages)
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)) == COUNT
    assert set(ids) == created
    assert newest_first(items)

    # Without the pin, the newest are on top again and the total counts them.
    fresh = page(api, 0)
    assert fresh["pagination"]["total"] == COUNT + len(arrived)
    assert fresh["data"][0]["id"] == max(arrived)
