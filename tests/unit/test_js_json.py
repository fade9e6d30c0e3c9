"""``js_json``: the rules of ``JSON.stringify`` (checked against Node itself in
tests/interop/test_js_json_interop.py), and what it refuses."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import pytest

from graphile_worker_cli import js_json, payloads
from graphile_worker_cli.errors import BadInputError


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"), (-0.0, "0"), (0.1, "0.1"), (1e-05, "0.00001"), (1e-06, "0.000001"),
        (1e-07, "1e-7"), (1.5e-07, "1.5e-7"), (123.456, "123.456"), (1e16, "10000000000000000"),
        (1e20, "100000000000000000000"), (1e21, "1e+21"), (1.5e21, "1.5e+21"),
        (-2.5e-10, "-2.5e-10"), (5e-324, "5e-324"), (1.7976931348623157e308,
        "1.7976931348623157e+308"), (2.0**60, "1152921504606847000"),
    ],
)
def test_numbers_as_javascript_writes_them(value: float, text: str) -> None:
    assert js_json.number_text(value) == text
    assert js_json.stringify([value]) == f"[{text}]"


def test_compact_raw_utf8_and_javascript_escapes() -> None:
    value = {"a": "é ✓ \"q\" \\ \n\t\x01\x7f\u2028", "b": [True, False, None]}
    assert js_json.stringify(value) == (
        '{"a":"é ✓ \\"q\\" \\\\ \\n\\t\\u0001\x7f\u2028","b":[true,false,null]}'
    )


def test_surrogates_lone_escaped_pairs_joined() -> None:
    assert js_json.stringify("\ud800") == '"\\ud800"'
    assert js_json.stringify("a\udfffb\ud83d") == '"a\\udfffb\\ud83d"'
    assert js_json.stringify("\ud83d\ude00") == '"😀"'  # two code points, one character
    js_json.stringify({"\udc00": 1}).encode("utf-8")  # always encodable


def test_keys_that_are_array_indexes_come_first_in_numeric_order() -> None:
    value = {"b": 1, "10": 2, "a": 3, "2": 4, "01": 5, "4294967295": 6, "4294967294": 7}
    assert js_json.stringify(value) == (
        '{"2":4,"10":2,"4294967294":7,"b":1,"a":3,"01":5,"4294967295":6}'
    )
    assert list(value) == ["b", "10", "a", "2", "01", "4294967295", "4294967294"]


def test_integers_are_exact_whatever_their_size() -> None:
    assert js_json.stringify([2**53, 2**64 + 1, -(10**30)]) == (
        "[9007199254740992,18446744073709551617,-1000000000000000000000000000000]"
    )


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


def test_subclasses_of_json_types_are_written_as_their_values() -> None:
    assert js_json.stringify({Name("k"): [Level.HIGH, Name("v"), (1, 2)]}) == '{"k":[3,"v",[1,2]]}'


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({1: "x"}, "object key 1 is not a string"),
        ({"a": {None: 1}}, "object key None is not a string"),
        ({"a": "x", 2: 1}, "object key 2 is not a string"),
        ([Colour.RED], "a Colour is not a JSON value"),
        ({"f": float("nan")}, "nan (a float) is not a JSON number"),
        ([float("-inf")], "-inf (a float) is not a JSON number"),
    ],
)
def test_what_is_refused_and_why(value: Any, reason: str) -> None:
    with pytest.raises(js_json.NotJSONError) as raised:
        js_json.stringify(value)
    assert raised.value.reason == reason


def test_non_finite_numbers_as_null_on_request() -> None:
    value = [float("inf"), float("nan"), 1.5]
    assert js_json.stringify(value, non_finite_as_null=True) == "[null,null,1.5]"


def nested(levels: int) -> Any:
    value: Any = 0
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


def test_nesting_is_bounded_and_a_value_containing_itself_is_refused() -> None:
    assert js_json.stringify(nested(js_json.MAX_DEPTH)).count("[") > 100
    too_deep = f"nested more than {js_json.MAX_DEPTH} levels deep (or contains itself)"
    with pytest.raises(js_json.NotJSONError, match=r"nested more than \d+ levels"):
        js_json.stringify(nested(js_json.MAX_DEPTH + 1))
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(js_json.NotJSONError) as raised:
        js_json.stringify(loop)
    assert raised.value.reason == too_deep


def test_payload_functions_use_it_and_say_what_is_wrong() -> None:
    assert payloads.to_json({"é": 1e-05, "1": True}) == '{"1":true,"é":0.00001}'
    assert payloads.raw_to_json([1.0, "ü"]) == '[1,"ü"]'
    with pytest.raises(BadInputError, match=r"raw payload contains a Colour, which is not a JSON"):
        payloads.raw_to_json({"c": Colour.RED})
    with pytest.raises(BadInputError, match=r"payload cannot be stored as JSON: "
                                            r"inf \(a float\) is not a JSON number"):
        payloads.raw_to_json({"x": float("inf")})
    assert payloads.replacement_to_json([{"n": float("inf")}]) == '[{"n":null}]'


def test_to_json_converts_what_is_not_json_yet_and_refuses_a_surrogate_key_cleanly() -> None:
    @dataclasses.dataclass
    class Holder:
        mapping: dict[str, int]

    assert payloads.to_json({1: "int keys become strings", "b": Colour.RED}) == (
        '{"1":"int keys become strings","b":"red"}'
    )
    assert payloads.to_json({"\ud800": 1}) == '{"\\ud800":1}'  # plain values: written as is
    with pytest.raises(BadInputError, match="a key holds a lone UTF-16 surrogate"):
        payloads.to_json(Holder({"\ud800": 1}))
