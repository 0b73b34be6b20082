"""What a user types becomes what the API takes: `key=value` words, parameter files, durations."""

import pytest

from client.params import InputError, load_param_file, parse_duration, parse_pairs


@pytest.mark.parametrize(("word", "value"), [
    ("n=3", 3),
    ("ratio=0.5", 0.5),
    ("flag=true", True),
    ("nothing=null", None),
    ("list=[1,2]", [1, 2]),
    ('obj={"a": {"b": 1}}', {"a": {"b": 1}}),
    ('quoted="3"', "3"),
    ("name=Ada", "Ada"),
    ("name=Ada Lovelace", "Ada Lovelace"),
    ("url=http://x/?a=1&b=2", "http://x/?a=1&b=2"),  # only the first = splits
    ("empty=", ""),
    ("broken=[1,", "[1,"),  # not JSON: kept as text
])
def test_values_are_json_when_they_parse_else_text(word, value):
    key = word.partition("=")[0]
    assert parse_pairs([word]) == {key: value}


def test_the_last_of_a_repeated_key_wins_and_keys_are_trimmed():
    assert parse_pairs(["a=1", " a =2", "b=x"]) == {"a": 2, "b": "x"}


@pytest.mark.parametrize("word", ["novalue", "=3", " =3"])
def test_a_word_without_a_key_is_a_usage_error(word):
    with pytest.raises(InputError, match="is not key=value"):
        parse_pairs([word])


@pytest.mark.parametrize(("text", "seconds"), [
    ("3600", 3600), ("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000),
    ("2w", 1209600), (" 12H ", 43200),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1.5h", "-3", "12y", "3 h", "0", "0d"])
def test_bad_durations_say_what_is_wrong(text):
    with pytest.raises(InputError, match="duration"):
        parse_duration(text)


def test_a_param_file_is_json_or_yaml_holding_a_mapping(tmp_path):
    as_json = tmp_path / "p.json"
    as_json.write_text('{"n": 3, "names": ["a", "b"]}')
    as_yaml = tmp_path / "p.yaml"
    as_yaml.write_text("n: 3\nnames: [a, b]\n")
    assert load_param_file(as_json) == load_param_file(as_yaml) == {"n": 3, "names": ["a", "b"]}
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="must hold a mapping"):
        load_param_file(listed)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1,\n")
    with pytest.raises(InputError, match="neither JSON nor YAML"):
        load_param_file(broken)
