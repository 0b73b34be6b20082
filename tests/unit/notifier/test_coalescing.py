"""The rule.triggered coalescer: leading edge at once, then one counted message per window."""

from __future__ import annotations

import pytest

from nameko_services.notifier.coalescing import Coalescer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_item_goes_out_at_once_and_the_burst_after_it_is_held_and_counted():
    clock = Clock()
    coalescer = Coalescer(1.0, clock)
    assert coalescer.offer("r", 1).send_now
    second = coalescer.offer("r", 2)
    assert not second.send_now and second.flush_in == 1.0
    clock.now += 0.4
    third = coalescer.offer("r", 3)
    assert not third.send_now and third.flush_in is None  # the flush is already scheduled
    assert coalescer.flush("r") == (3, 2)
    assert coalescer.flush("r") is None


def test_after_a_flush_the_next_window_holds_again_so_at_most_one_message_per_window():
    clock = Clock()
    coalescer = Coalescer(1.0, clock)
    coalescer.offer("r", 1)
    coalescer.offer("r", 2)
    clock.now += 1.0
    assert coalescer.flush("r") == (2, 1)
    clock.now += 0.1
    decision = coalescer.offer("r", 3)
    assert not decision.send_now and decision.flush_in == pytest.approx(0.9)


def test_a_quiet_key_sends_at_once_again_and_keys_do_not_interfere():
    clock = Clock()
    coalescer = Coalescer(1.0, clock)
    assert coalescer.offer("a", 1).send_now
    assert coalescer.offer("b", 1).send_now
    clock.now += 1.5
    assert coalescer.offer("a", 2).send_now
    clock.now += 5
    coalescer.offer("c", 1)
    assert len(coalescer) == 1  # idle windows are forgotten
