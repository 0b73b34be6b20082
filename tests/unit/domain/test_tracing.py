"""W3C traceparent headers: a valid one is honoured, anything else gives a new trace id."""

import pytest

from nameko_services.domain import tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_a_valid_traceparent_gives_its_trace_and_parent():
    assert tracing.parent_of(f"00-{TRACE}-{PARENT}-01") == (TRACE, PARENT)
    assert tracing.trace_id_from(f"00-{TRACE}-{PARENT}-00") == TRACE
    # a later version may add fields; version 00 may not
    assert tracing.parent_of(f"01-{TRACE}-{PARENT}-01-extra") == (TRACE, PARENT)


@pytest.mark.parametrize("header", [
    None, "", "garbage", f"00-{TRACE}-{PARENT}",  # too few fields
    f"00-{TRACE.upper()}-{PARENT}-01",  # upper case is not allowed
    f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
    f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
    f"ff-{TRACE}-{PARENT}-01",  # the forbidden version
    f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has four fields
    f"00-{TRACE[:-1]}-{PARENT}-01",
])
def test_an_invalid_traceparent_is_ignored_and_a_new_trace_made(header):
    assert tracing.parent_of(header) is None
    made = tracing.trace_id_from(header)
    assert tracing.is_trace_id(made) and made != TRACE


def test_new_trace_ids_differ_and_a_traceparent_names_the_trace():
    assert tracing.new_trace_id() != tracing.new_trace_id()
    header = tracing.traceparent(TRACE)
    assert tracing.parent_of(header)[0] == TRACE
    assert tracing.traceparent(TRACE, PARENT) == f"00-{TRACE}-{PARENT}-01"
