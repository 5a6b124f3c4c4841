"""The .properties reader: each rule of java.util.Properties.load."""

from __future__ import annotations

import pytest

from exchange_store.config import load_properties_file, parse_properties
from exchange_store.errors import ConfigurationError


def values(text: str) -> dict[str, str]:
    return parse_properties(text).values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=1", {"a": "1"}),
        ("a:1", {"a": "1"}),
        ("a 1", {"a": "1"}),
        ("a\t1", {"a": "1"}),
        ("a = 1", {"a": "1"}),
        ("a  :  1", {"a": "1"}),
        ("a =: 1", {"a": ": 1"}),  # only one separator is eaten
        ("a==1", {"a": "=1"}),
        ("   a=1", {"a": "1"}),  # leading white space before the key
        ("a=1   ", {"a": "1   "}),  # trailing white space is kept in the value
        ("a", {"a": ""}),
        ("a=", {"a": ""}),
        ("a:", {"a": ""}),
        ("\f a=1", {"a": "1"}),  # form feed is white space
    ],
)
def test_separators(text: str, expected: dict[str, str]) -> None:
    assert values(text) == expected


@pytest.mark.parametrize("comment", ["# c", "! c", "   # c", "\t! c=1"])
def test_comments_and_blank_lines(comment: str) -> None:
    assert values(f"{comment}\n\n   \na=1\n") == {"a": "1"}


def test_hash_inside_value_is_not_a_comment() -> None:
    assert values("a=1 # not a comment") == {"a": "1 # not a comment"}


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"])
def test_line_terminators(newline: str) -> None:
    assert values(f"a=1{newline}b=2{newline}") == {"a": "1", "b": "2"}


def test_continuation_drops_leading_white_space() -> None:
    assert values("a=one, \\\n    two, \\\n\tthree\nb=2") == {"a": "one, two, three", "b": "2"}


def test_even_backslashes_do_not_continue() -> None:
    assert values("a=x\\\\\nb=2") == {"a": "x\\", "b": "2"}


def test_continuation_at_end_of_file() -> None:
    assert values("a=x\\") == {"a": "x"}


def test_continued_line_is_not_a_comment() -> None:
    # The continuation of a value may start with '#': it is part of the value.
    assert values("a=x\\\n  # y") == {"a": "x# y"}


def test_comment_lines_do_not_continue() -> None:
    assert values("# c \\\na=1") == {"a": "1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=\\t\\n\\r\\f", {"a": "\t\n\r\f"}),
        ("a=\\u0041\\u00e9", {"a": "Aé"}),
        ("k\\=y=v", {"k=y": "v"}),
        ("k\\:y=v", {"k:y": "v"}),
        ("k\\ y=v", {"k y": "v"}),
        ("a=\\q", {"a": "q"}),  # a backslash before another character stands for it
        ("a=c:\\\\dir", {"a": "c:\\dir"}),
        ("\\#a=1", {"#a": "1"}),
    ],
)
def test_escapes(text: str, expected: dict[str, str]) -> None:
    assert values(text) == expected


@pytest.mark.parametrize("bad", ["a=\\u12", "a=\\uZZZZ", "a=\\u"])
def test_malformed_unicode_escape_names_line(bad: str) -> None:
    with pytest.raises(ConfigurationError, match=r"x\.properties:2: malformed \\uXXXX"):
        parse_properties(f"# header\n{bad}", "x.properties")


def test_duplicate_key_is_an_error_naming_both_lines() -> None:
    with pytest.raises(ConfigurationError, match=r"f:3: key 'a' given twice \(first at line 1\)"):
        parse_properties("a=1\nb=2\na=3", "f")


def test_lines_and_where() -> None:
    pf = parse_properties("\n# c\na=1\nb=x\\\n y", "etc/e.properties")
    assert pf.lines == {"a": 3, "b": 4}
    assert pf.where("b") == "etc/e.properties:4"


def test_load_missing_file_names_it(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match=r"nope\.properties: configuration file not found"):
        load_properties_file(tmp_path / "nope.properties")


def test_load_non_utf8_names_file(tmp_path) -> None:
    path = tmp_path / "bad.properties"
    path.write_bytes(b"a=\xff\xfe")
    with pytest.raises(ConfigurationError, match=r"bad\.properties: not valid UTF-8"):
        load_properties_file(path)


def test_load_utf8_values(tmp_path) -> None:
    path = tmp_path / "ok.properties"
    path.write_text("name=café\n", encoding="utf-8")
    assert load_properties_file(path).values == {"name": "café"}
