"""Masking and the result shape: pure, no processes."""

import random
import re

from runners.base import MASK, Masker, Outcome, RunRequest, RunResult
from runners.process import truncation_marker


def test_every_known_secret_is_replaced_in_text_and_json_values():
    masker = Masker(["hunter2", "tok-123"])
    assert masker.text("pw=hunter2 and tok-123") == "pw=*** and ***"
    value = {"a": ["hunter2", {"hunter2": "x tok-123"}], "n": 5}
    assert masker.value(value) == {"a": ["***", {"***": "x ***"}], "n": 5}


def test_the_longest_secret_wins_when_one_contains_another():
    assert Masker(["abc", "abcdef"]).text("abcdef abc") == "*** ***"


def test_json_escaped_form_of_a_secret_is_masked_too():
    masker = Masker(['pa"ss'])
    assert masker.text('{"p": "pa\\"ss"}') == '{"p": "***"}'


def test_empty_and_missing_values_mask_nothing():
    masker = Masker(["", None])
    assert not masker
    assert masker.text("anything") == "anything"
    assert masker.cut(b"abcdef", 3) == b"abc"


def test_a_cut_never_reveals_the_prefix_of_a_secret_running_past_it():
    masker = Masker(["SECRETVALUE"])
    data = b"x" * 8 + b"SECRETVALUE" + b"tail"
    assert masker.cut(data, 10) == b"x" * 8 + b"***"
    assert masker.cut(data, 8) == b"x" * 8


def test_masking_finds_what_a_longest_first_regex_alternation_finds():
    """The substring scan agrees with the obvious (but slow to compile) regex, overlaps included."""
    rng = random.Random(7)
    for _ in range(2000):
        secrets = {"".join(rng.choices("ab*", k=rng.randint(1, 4))) for _ in range(3)}
        data = "".join(rng.choices("ab*x", k=rng.randint(0, 30)))
        ordered = sorted(secrets, key=len, reverse=True)
        pattern = re.compile("|".join(map(re.escape, ordered)))
        masker = Masker(secrets)
        assert masker.text(data) == pattern.sub(MASK, data), (secrets, data)
        limit = rng.randint(0, 30)
        expected = bytearray()
        pos = 0
        for match in pattern.finditer(data):
            if match.start() >= limit:
                break
            expected += data[pos:match.start()].encode() + MASK.encode()
            pos = match.end()
        expected += data[pos:limit].encode() if pos < limit else b""
        assert masker.cut(data.encode(), limit) == bytes(expected), (secrets, data, limit)


def test_request_masks_secrets_secret_parameters_and_the_token(tmp_path):
    request = RunRequest(
        execution_id=1, action_ref="p.a", runner_type="python", working_dir=tmp_path,
        parameters={"password": "p4ss", "user": "bob"}, secret_parameters=frozenset({"password"}),
        secrets={"api_key": "k3y"}, context={"token": "jwt.token"},
    )
    masker = request.masker()
    assert masker.text("bob p4ss k3y jwt.token") == "bob *** *** ***"


def test_http_fields_appear_in_the_result_only_for_http():
    plain = RunResult(outcome=Outcome.SUCCEEDED, output=1, exit_code=0).to_result()
    assert set(plain) == {"output", "exit_code", "stdout", "stderr", "error", "truncated",
                          "duration_ms"}
    http = RunResult(outcome=Outcome.SUCCEEDED, status_code=200, headers={"a": "b"}).to_result()
    assert http["status_code"] == 200
    assert http["headers"] == {"a": "b"}


def test_truncation_marker_names_the_limit():
    assert truncation_marker(1024) == "... (output truncated after 1024 bytes)"
