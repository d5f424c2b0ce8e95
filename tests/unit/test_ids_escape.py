""":func:`shared.ids.escape` spells every part exactly as ``urllib.parse.quote(part, safe="")``
(with a leading ``_`` encoded too): ids written before its fast paths stay the same ids."""

from __future__ import annotations

import random
from urllib.parse import quote

import pytest

from shared import ids
from shared.errors import InvalidInput
from shared.records.model import parse_record_id, record_id


def reference(part: str) -> str:
    text = quote(part, safe="")
    return "%5F" + text[1:] if text.startswith("_") else text


def test_every_ascii_character_alone_between_and_leading():
    for code in range(1, 128):
        c = chr(code)
        for part in (c, f"a{c}b", f"{c}x", f"x{c}", f"_{c}"):
            assert ids.escape(part) == reference(part), repr(part)


def test_random_and_non_ascii_parts():
    rng = random.Random(7)
    alphabet = [chr(c) for c in range(1, 128)] + list("éß€😀ñ中") + ["\u2028"]
    for _ in range(3000):
        part = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        assert ids.escape(part) == reference(part), repr(part)
    for part in ("repo-1#42", "acme/api", "a:b", "~x.y-z_", "_leading", "%41"):
        assert ids.escape(part) == reference(part)


def test_a_record_id_parses_back_and_bad_input_is_refused():
    rid = record_id("t:1", "github", "issues", "123#4")
    assert parse_record_id(rid) == ("t:1", "github", "issues", "123#4")
    assert parse_record_id(rid) == ("t:1", "github", "issues", "123#4")  # cached: same answer
    for bad in (None, 7, ["a"], {"a": 1}, "", "a:b:c", "t:github:nope:1"):
        with pytest.raises(InvalidInput):
            parse_record_id(bad)  # type: ignore[arg-type]
