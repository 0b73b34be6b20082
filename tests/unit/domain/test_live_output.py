"""Live output: lines split from chunks, bounded per second, cut, masked and batched per stream
(domain/live_output.py, runners.base.LineSplitter)."""

from __future__ import annotations

import pytest

from nameko_services.domain.errors import ConfigurationError
from nameko_services.domain.live_output import (
    LiveOutput,
    LiveOutputSettings,
    cut_marker,
    dropped_marker,
    live_masker,
)
from runners.base import LineSplitter, Masker, OutputLines


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(settings: LiveOutputSettings | None = None, secrets: list | None = None):
    published: list[tuple[str, int, list[str], int]] = []
    spawned: list = []
    clock = Clock()
    live = LiveOutput(settings or LiveOutputSettings(), live_masker(secrets or []),
                      lambda *message: published.append(message), clock=clock,
                      spawn=spawned.append)
    return live, published, spawned, clock


# -- LineSplitter ----------------------------------------------------------------------------

def splitter(keep: int = 10):
    calls: list[tuple[str, list[bytes], bool]] = []
    lines = OutputLines(lambda stream, got, cut: calls.append((stream, got, cut)), keep)
    return LineSplitter("stdout", lines), calls


def test_whole_lines_of_a_chunk_go_in_one_call_and_a_partial_line_waits_for_its_end():
    split, calls = splitter()
    split.feed(b"one\ntwo\nthr")
    assert calls == [("stdout", [b"one", b"two"], False)]
    split.feed(b"ee\n")
    split.feed(b"last")
    assert calls[1:] == [("stdout", [b"three"], False)]
    split.end()
    assert calls[2:] == [("stdout", [b"last"], False)]


def test_a_chunk_without_a_newline_sends_nothing_and_an_empty_stream_nothing_at_all():
    split, calls = splitter()
    split.feed(b"abc")
    assert calls == []
    quiet, none = splitter()
    quiet.end()
    assert none == []


def test_a_long_line_arrives_cut_alone_in_order_and_its_rest_is_skipped():
    split, calls = splitter(keep=4)
    split.feed(b"ok\n0123456789\nafter\n")
    assert calls == [("stdout", [b"ok"], False), ("stdout", [b"0123"], True),
                     ("stdout", [b"afte"], True)]
    long, more = splitter(keep=4)
    long.feed(b"0123")  # exactly keep: still whole
    long.feed(b"45")  # now too long: sent cut, the rest skipped until its newline
    long.feed(b"6789")
    long.feed(b"9\nnext\n")
    assert more == [("stdout", [b"0123"], True), ("stdout", [b"next"], False)]


# -- the bound ---------------------------------------------------------------------------------

def test_lines_over_the_per_second_bound_are_dropped_with_a_marker_where_they_were():
    live, published, _, clock = make(LiveOutputSettings(lines_per_second=3))
    live.send("stdout", [b"a", b"b", b"c", b"d", b"e"], False)
    clock.now += 1.0  # a new second: room again
    live.send("stdout", [b"f"], False)
    assert live.flush()
    assert published == [("stdout", 1, ["a", "b", "c", dropped_marker(2), "f"], 2)]
    assert live.dropped == 2


def test_the_byte_bound_counts_both_streams_and_drops_the_rest_of_a_call():
    live, published, _, _ = make(LiveOutputSettings(bytes_per_second=10, line_bytes=10))
    live.send("stdout", [b"12345"], False)
    live.send("stderr", [b"1234", b"12", b"1"], False)  # 9 bytes used: "12" does not fit
    live.flush()
    assert published == [("stdout", 1, ["12345"], 0),
                         ("stderr", 1, ["1234", dropped_marker(2)], 2)]


def test_within_the_bound_nothing_is_dropped():
    live, published, _, clock = make(LiveOutputSettings(lines_per_second=2))
    for n in range(5):
        live.send("stdout", [f"{n}".encode()], False)
        clock.now += 0.5
    live.flush()
    assert published == [("stdout", 1, ["0", "1", "2", "3", "4"], 0)]


# -- cutting and masking -----------------------------------------------------------------------

def test_a_long_line_is_cut_with_a_marker_and_a_secret_across_the_cut_is_masked_whole():
    live, published, _, _ = make(LiveOutputSettings(line_bytes=8), secrets=["s3cr3t-value"])
    lines = live.lines()
    assert lines.keep_bytes == 8 + len("s3cr3t-value") - 1
    live.send("stdout", [b"abcdefghijkl"], True)
    live.send("stdout", [b"xxxxxs3cr3t-value"[:lines.keep_bytes]], True)
    live.flush()
    assert published[0][2] == ["abcdefgh" + cut_marker(8), "xxxxx***" + cut_marker(8)]
    assert "s3cr" not in " ".join(published[0][2])


def test_every_secret_of_the_run_is_masked_and_a_multi_line_one_line_by_line():
    key = "-----BEGIN KEY-----\nQUJDREVGR0hJSktMTU5PUA==\n-----END KEY-----"
    live, published, _, _ = make(secrets=["hunter22", key, None, 7])
    live.send("stdout", [b"password is hunter22", b"QUJDREVGR0hJSktMTU5PUA==", b"plain"], False)
    live.flush()
    assert published == [("stdout", 1, ["password is ***", "***", "plain"], 0)]


def test_a_short_line_of_a_multi_line_secret_is_not_masked_everywhere():
    masker = live_masker(["abc\nlong-enough-line"])
    assert masker.text("abc long-enough-line") == "abc ***"
    assert isinstance(masker, Masker)


# -- batching ------------------------------------------------------------------------------------

def test_one_message_per_stream_per_flush_with_a_sequence_number_per_stream():
    live, published, _, _ = make()
    live.send("stdout", [b"1"], False)
    live.send("stderr", [b"e1"], False)
    live.send("stdout", [b"2"], False)
    live.flush()
    live.send("stdout", [b"3"], False)
    live.flush()
    assert published == [("stdout", 1, ["1", "2"], 0), ("stderr", 1, ["e1"], 0),
                         ("stdout", 2, ["3"], 0)]


def test_nothing_printed_starts_no_thread_and_publishes_nothing():
    live, published, spawned, _ = make()
    assert live.flush() is False
    live.close()
    assert published == [] and spawned == []


def test_the_first_line_starts_one_flushing_thread_and_close_sends_the_rest():
    live, published, spawned, _ = make()
    live.send("stdout", [b"a"], False)
    live.send("stdout", [b"b"], False)
    assert len(spawned) == 1  # one thread, whatever the number of lines
    live.close()
    live.send("stdout", [b"after the end"], False)
    live.flush()
    assert published == [("stdout", 1, ["a", "b"], 0)]


def test_the_flushing_thread_ends_once_a_flush_finds_nothing_and_a_new_line_starts_another(
        monkeypatch):
    monkeypatch.setattr("nameko_services.domain.live_output.time.sleep", lambda _s: None)
    live, published, spawned, _ = make()
    live.send("stdout", [b"a"], False)
    spawned.pop()()  # run the thread: flushes "a", then finds nothing and returns
    assert published == [("stdout", 1, ["a"], 0)]
    live.send("stdout", [b"b"], False)
    assert len(spawned) == 1


def test_a_failing_publish_is_logged_and_the_next_batch_goes_on():
    calls = []

    def publish(*message):
        calls.append(message)
        if len(calls) == 1:
            raise OSError("broker away")

    live = LiveOutput(LiveOutputSettings(), Masker([]), publish, spawn=lambda _t: None)
    live.send("stdout", [b"a"], False)
    live.flush()
    live.send("stdout", [b"b"], False)
    live.flush()
    assert [c[:3] for c in calls] == [("stdout", 1, ["a"]), ("stdout", 2, ["b"])]


# -- settings ----------------------------------------------------------------------------------

def test_settings_parse_text_values_and_refuse_unknown_keys_and_impossible_bounds():
    parsed = LiveOutputSettings.from_mapping({"enabled": "false", "interval_ms": "150",
                                              "lines_per_second": 10})
    assert parsed == LiveOutputSettings(enabled=False, interval_ms=150, lines_per_second=10)
    with pytest.raises(ConfigurationError, match=r"live_output.*intervall_ms"):
        LiveOutputSettings.from_mapping({"intervall_ms": 100})
    with pytest.raises(ConfigurationError, match="interval_ms"):
        LiveOutputSettings.from_mapping({"interval_ms": 0})
    with pytest.raises(ConfigurationError, match="line_bytes"):
        LiveOutputSettings.from_mapping({"line_bytes": 100, "bytes_per_second": 50})
    with pytest.raises(ConfigurationError, match="bad value"):
        LiveOutputSettings.from_mapping({"lines_per_second": "many"})
