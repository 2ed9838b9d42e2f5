from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tavari_dr.core.envfile import EnvFileError, dump, parse


def test_accepted_forms():
    text = (
        "# comment\r\n"
        "\r\n"
        "PLAIN=value\r\n"
        "export EXPORTED=yes\r\n"
        'DOUBLE="two words \\"quoted\\" \\n newline"\r\n'
        "SINGLE='lit $HOME \\n'\r\n"
        "SPACED = padded   # trailing comment\r\n"
        "URL=postgresql://u:p@host:5432/db?sslmode=require\r\n"
        "EMPTY=\r\n"
        'HASH="a # not a comment"\r\n'
    )
    assert parse(text) == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "DOUBLE": 'two words "quoted" \n newline',
        "SINGLE": "lit $HOME \\n",
        "SPACED": "padded",
        "URL": "postgresql://u:p@host:5432/db?sslmode=require",
        "EMPTY": "",
        "HASH": "a # not a comment",
    }


@pytest.mark.parametrize(("text", "message"), [
    ("A=1\nB=2\nA=3\n", "env:3: A is defined again (first on line 1)"),
    ("A=1\nJUSTTEXT\n", "env:2: no '=' in this line"),
    ("1BAD=x\n", "env:1: '1BAD' is not a valid key"),
    ('A="open\n', "env:1: the value's \" quote is never closed"),
    ("A='x' trailing\n", "env:1: unexpected text after the closing quote"),
])
def test_malformed_files_name_the_line(text, message):
    with pytest.raises(EnvFileError) as err:
        parse(text, "env")
    assert message in str(err.value)


keys = st.from_regex(r"[A-Z_][A-Z0-9_]{0,20}", fullmatch=True)
values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, values, max_size=8))
def test_dump_then_parse_is_exact(data):
    assert parse(dump(data)) == data
