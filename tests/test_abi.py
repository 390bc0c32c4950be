"""Tests for `indexer.abi`: event signature parsing and the generated decoders."""

from __future__ import annotations

import copy
import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_hash.auto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer import DecodeError
from indexer.abi import EventSpec, Param, events_from_abi, parse_event_signature
from indexer.abi._compile import _Layout

TRANSFER = "event Transfer(address indexed from, address indexed to, uint256 value)"
TRANSFER_TOPIC0 = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ZERO_WORD = "0" * 64

_DATA_NAME = "ethereum_mainnet_all_logs_18426253_18426303.getlogs.jsonl.gz"
_DATA_DIRS = (
    Path("/work/shared/data"),
    Path(__file__).resolve().parent.parent / "examples" / "erc20" / "data",
)


def _word(value: int) -> str:
    return f"{value % (1 << 256):064x}"


def _addr_topic(address: str) -> str:
    return "0x" + "0" * 24 + address[2:]


# --------------------------------------------------------------------------
# topic0 of well-known events
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signature", "topic0"),
    [
        (TRANSFER, TRANSFER_TOPIC0),
        (
            "event Approval(address indexed owner, address indexed spender, uint256 value)",
            "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925",
        ),
        (
            "event Sync(uint112 reserve0, uint112 reserve1)",
            "0x1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1",
        ),
        (
            "Swap(address indexed sender,uint256 amount0In,uint256 amount1In,"
            "uint256 amount0Out,uint256 amount1Out,address indexed to)",
            "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822",
        ),
    ],
)
def test_topic0_of_known_events(signature: str, topic0: str) -> None:
    assert parse_event_signature(signature).topic0 == topic0


# --------------------------------------------------------------------------
# Parsing signatures
# --------------------------------------------------------------------------


def test_parse_transfer() -> None:
    spec = parse_event_signature(TRANSFER)
    assert spec.name == "Transfer"
    assert spec.inputs == (
        Param("from", "address", True),
        Param("to", "address", True),
        Param("value", "uint256", False),
    )
    assert not spec.anonymous
    assert spec.signature == "Transfer(address,address,uint256)"
    assert spec.topic_count == 3


@pytest.mark.parametrize(
    "text",
    [
        "Transfer(address indexed from, address indexed to, uint256 value)",
        "  event   Transfer ( address  indexed  from ,address indexed to,uint value ) ; ",
        "event Transfer(address payable indexed from, address indexed to, uint value)",
        "event\tTransfer(\n  address indexed from,\n  address indexed to,\n  uint256 value\n)",
    ],
)
def test_parse_spelling_variants(text: str) -> None:
    assert parse_event_signature(text) == parse_event_signature(TRANSFER)


def test_parse_aliases_arrays_tuples_and_unnamed() -> None:
    spec = parse_event_signature(
        "event Foo(uint a, int indexed, byte c, uint8[] d, bytes32[3][] e, "
        "(address owner, uint256[2] amounts) indexed f, tuple(bool,string)[] g, string)"
    )
    assert [(p.name, p.type, p.indexed) for p in spec.inputs] == [
        ("a", "uint256", False),
        ("arg1", "int256", True),
        ("c", "bytes1", False),
        ("d", "uint8[]", False),
        ("e", "bytes32[3][]", False),
        ("f", "(address,uint256[2])", True),
        ("g", "(bool,string)[]", False),
        ("arg7", "string", False),
    ]
    assert spec.signature == (
        "Foo(uint256,int256,bytes1,uint8[],bytes32[3][],(address,uint256[2]),(bool,string)[],string)"
    )
    assert spec.topic_count == 3


def test_parse_anonymous() -> None:
    spec = parse_event_signature(
        "event Log(address indexed a, address indexed b, uint indexed c, uint indexed d) anonymous"
    )
    assert spec.anonymous
    assert spec.topic_count == 4
    assert spec.topic0 == "0x" + keccak(b"Log(address,address,uint256,uint256)").hex()


def test_parse_no_params() -> None:
    spec = parse_event_signature("event Paused()")
    assert spec.inputs == ()
    assert spec.signature == "Paused()"
    assert spec.decoder()((spec.topic0,), "0x") == {}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("event Foo(uint7 x)", r"unknown type 'uint7' .*multiple of 8.* at column 11"),
        ("event Foo(uint264 x)", r"unknown type 'uint264'"),
        ("event Foo(int0 x)", r"unknown type 'int0'"),
        ("event Foo(uint08 x)", r"unknown type 'uint08'"),
        ("event Foo(bytes33 x)", r"unknown type 'bytes33' \(bytesN needs N from 1 to 32\)"),
        ("event Foo(bytes0 x)", r"unknown type 'bytes0'"),
        ("event Foo(adress x)", r"unknown type 'adress' at column 11"),
        ("event Foo(fixed128x18 x)", r"'fixed128x18' is not supported"),
        ("event Foo(function f)", r"'function' is not supported"),
        ("event Foo(uint256 x", r"expected ',' or '\)' after a parameter, found the end"),
        ("event Foo uint256 x)", r"expected '\(' after the event name"),
        ("event (uint256 x)", r"expected the event name"),
        ("", r"expected the event name"),
        ("event Foo(uint256 x) extra", r"unexpected 'extra' after the parameter list"),
        ("event Foo(uint256 indexed indexed x)", r"'indexed' given twice"),
        ("event Foo(uint256 x y)", r"expected ',' or '\)'.*found 'y'"),
        ("event Foo(uint256[0] x)", r"fixed-size array needs a length of at least 1"),
        ("event Foo(uint256[01] x)", r"array length 01 has a leading zero"),
        ("event Foo(uint256[2 x)", r"expected '\]'"),
        ("event Foo(() x)", r"tuple type needs at least one component"),
        ("event Foo((uint256 indexed a) x)", r"'indexed' is not allowed inside a tuple"),
        ("event Foo(uint256 #x)", r"unexpected character '#' at column 19"),
        ("event Foo(uint a, uint a)", r"two inputs are named 'a'"),
        (
            "event Foo(uint indexed a, uint indexed b, uint indexed c, uint indexed d)",
            r"4 indexed inputs; an event can have at most 3",
        ),
        (
            "event Foo(uint indexed a, uint indexed b, uint indexed c, uint indexed d, "
            "uint indexed e) anonymous",
            r"5 indexed inputs; an anonymous event can have at most 4",
        ),
    ],
)
def test_parse_errors_are_precise(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_event_signature(text)


def test_parse_rejects_non_string() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_event_signature(42)  # type: ignore[arg-type]


def test_event_spec_normalises_and_checks() -> None:
    spec = EventSpec("Foo", (Param("", "uint", False), Param("b", "(uint, address)[]", True)))
    assert spec.inputs == (Param("arg0", "uint256", False), Param("b", "(uint256,address)[]", True))
    assert spec == parse_event_signature("event Foo(uint256, (uint256,address)[] indexed b)")
    with pytest.raises(ValueError, match=r"input 0 \(x\): unknown type 'uint3'"):
        EventSpec("Foo", (Param("x", "uint3", False),))
    with pytest.raises(ValueError, match="not an identifier"):
        EventSpec("Foo Bar", ())


def test_decoder_is_built_once() -> None:
    spec = parse_event_signature(TRANSFER)
    assert spec.decoder() is spec.decoder()


def test_spec_pickles_and_copies_after_compiling() -> None:
    spec = parse_event_signature(TRANSFER)
    topics, data = _transfer_log(5)
    expected = spec.decoder()(topics, data)
    for clone in (pickle.loads(pickle.dumps(spec)), copy.deepcopy(spec)):
        assert clone == spec
        assert hash(clone) == hash(spec)
        assert clone.decoder()(topics, data) == expected


# --------------------------------------------------------------------------
# ABI JSON
# --------------------------------------------------------------------------

_ABI: list[dict[str, Any]] = [
    {"type": "constructor", "inputs": []},
    {"type": "function", "name": "transfer", "inputs": [{"name": "to", "type": "address"}]},
    {
        "type": "event",
        "name": "Transfer",
        "anonymous": False,
        "inputs": [
            {"name": "from", "type": "address", "indexed": True},
            {"name": "to", "type": "address", "indexed": True},
            {"name": "value", "type": "uint256", "indexed": False},
        ],
    },
    {
        "type": "event",
        "name": "Orders",
        "inputs": [
            {"name": "", "type": "uint", "indexed": True},
            {
                "name": "orders",
                "type": "tuple[]",
                "indexed": False,
                "components": [
                    {"name": "maker", "type": "address"},
                    {
                        "name": "legs",
                        "type": "tuple[2]",
                        "components": [
                            {"name": "token", "type": "address"},
                            {"name": "amount", "type": "uint128"},
                        ],
                    },
                ],
            },
        ],
    },
    {"type": "event", "name": "Anon", "anonymous": True, "inputs": []},
    {"type": "error", "name": "Nope", "inputs": []},
]


def test_events_from_abi() -> None:
    specs = events_from_abi(_ABI)
    assert [s.name for s in specs] == ["Transfer", "Orders", "Anon"]
    assert specs[0] == parse_event_signature(TRANSFER)
    assert specs[1].signature == "Orders(uint256,(address,(address,uint128)[2])[])"
    assert specs[1].inputs[0] == Param("arg0", "uint256", True)
    assert specs[2].anonymous
    assert specs[2].topic_count == 0


@pytest.mark.parametrize(
    ("abi", "reason"),
    [
        ([{"type": "event", "inputs": []}], r"ABI entry 0: event without a string 'name'"),
        ([{"type": "event", "name": "E", "inputs": {}}], r"'inputs' must be a list"),
        (
            [{"type": "event", "name": "E", "inputs": [{"name": "x"}]}],
            r"input 0: missing or non-string 'type'",
        ),
        (
            [{"type": "event", "name": "E", "inputs": [{"name": "x", "type": "uint9"}]}],
            r"ABI entry 0 \(event E\) input 0: unknown type 'uint9'",
        ),
        (
            [{"type": "event", "name": "E", "inputs": [{"name": "x", "type": "tuple"}]}],
            r"needs a non-empty 'components' list",
        ),
        (
            [
                {
                    "type": "event",
                    "name": "E",
                    "inputs": [{"name": "a", "type": "uint"}, {"name": "a", "type": "bool"}],
                }
            ],
            r"two inputs are named 'a'",
        ),
    ],
)
def test_events_from_abi_errors(abi: list[dict[str, Any]], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        events_from_abi(abi)


# --------------------------------------------------------------------------
# Decoding: hand-written cases
# --------------------------------------------------------------------------

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20


def _transfer_log(value: int = 10**18) -> tuple[tuple[str, ...], str]:
    return (TRANSFER_TOPIC0, _addr_topic(ALICE), _addr_topic(BOB)), "0x" + _word(value)


def test_decode_transfer() -> None:
    decode = parse_event_signature(TRANSFER).decoder()
    topics, data = _transfer_log(12345)
    assert decode(topics, data) == {"from": ALICE, "to": BOB, "value": 12345}
    # Lists work as well as tuples.
    assert decode(list(topics), data) == {"from": ALICE, "to": BOB, "value": 12345}  # type: ignore[arg-type]


def test_decode_uppercase_hex() -> None:
    decode = parse_event_signature(TRANSFER).decoder()
    topics, data = _transfer_log(2**255 + 7)
    upper = tuple("0x" + t[2:].upper() for t in topics)
    assert decode(upper, "0X" + data[2:].upper()) == decode(topics, data)
    assert decode(upper, data)["from"] == ALICE  # lowercase out


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda t, d: (t[:2], d), r"expected 3 topics .* got 2"),
        (lambda t, d: ((*t, "0x" + ZERO_WORD), d), r"expected 3 topics .* got 4"),
        (lambda t, d: (("0x" + "11" * 32, *t[1:]), d), r"topic0 .* is not the topic0 of Transfer"),
        (lambda t, d: (t, d[:-2]), r"data is 31 bytes, but .* take exactly 32"),
        (lambda t, d: (t, d + "00" * 32), r"data is 64 bytes"),
        (lambda t, d: (t, "0x"), r"data is 0 bytes"),
        (lambda t, d: (t, d[:-1]), r"odd number of hex digits"),
        (lambda t, d: (t, d[:-1] + "g"), r"not 0x-prefixed hex"),
        (
            lambda t, d: ((t[0], "0x01" + t[1][4:], t[2]), d),
            r"topic 1 \(address indexed from\): Padding bytes",
        ),
        (lambda t, d: ((t[0], t[1], t[2] + "00"), d), r"topic 2 .* is 33 bytes, not 32"),
        (lambda t, d: ((t[0], t[1][:-2], t[2]), d), r"topic 1 .* is 31 bytes, not 32"),
        (lambda t, d: ((t[0], None, t[2]), d), r"topic 1 .* is a NoneType, not a hex string"),
        (lambda t, d: (t, None), r"data is a NoneType"),
    ],
)
def test_decode_transfer_rejects(mutate: Any, reason: str) -> None:
    decode = parse_event_signature(TRANSFER).decoder()
    topics, data = mutate(*_transfer_log())
    with pytest.raises(DecodeError, match=reason):
        decode(topics, data)


def test_erc721_transfer_is_not_erc20() -> None:
    decode = parse_event_signature(TRANSFER).decoder()
    topics = (TRANSFER_TOPIC0, _addr_topic(ALICE), _addr_topic(BOB), "0x" + _word(42))
    with pytest.raises(DecodeError, match="expected 3 topics"):
        decode(topics, "0x")
    erc721 = parse_event_signature(
        "event Transfer(address indexed from, address indexed to, uint256 indexed tokenId)"
    ).decoder()
    assert erc721(topics, "0x") == {"from": ALICE, "to": BOB, "tokenId": 42}


STATIC_EVENT = "event S(uint8 a, int16 b, bool c, bytes3 d, address e, int256 f, bytes32 g)"


def _static_data(**over: str) -> str:
    words = {
        "a": _word(255),
        "b": _word(-300),
        "c": _word(1),
        "d": "abcdef" + "0" * 58,
        "e": "0" * 24 + ALICE[2:],
        "f": _word(-(2**255)),
        "g": "ff" * 32,
    }
    words.update(over)
    return "0x" + "".join(words[k] for k in "abcdefg")


def test_decode_static_types() -> None:
    spec = parse_event_signature(STATIC_EVENT)
    assert spec.decoder()((spec.topic0,), _static_data()) == {
        "a": 255,
        "b": -300,
        "c": True,
        "d": b"\xab\xcd\xef",
        "e": ALICE,
        "f": -(2**255),
        "g": b"\xff" * 32,
    }


@pytest.mark.parametrize(
    ("field", "word", "reason"),
    [
        ("a", _word(256), r"uint8 a"),
        ("b", _word(2**15), r"int16 b"),
        ("b", _word(-(2**15) - 1), r"int16 b"),
        ("b", "00" + _word(-1)[2:], r"int16 b"),
        ("c", _word(2), r"bool c.*Boolean must be either 0x0 or 0x1"),
        ("d", "abcdef" + "0" * 57 + "1", r"bytes3 d.*Padding bytes"),
        ("e", "0" * 23 + "1" + ALICE[2:], r"address e.*Padding bytes"),
        ("a", "zz" + _word(0)[2:], r"not 0x-prefixed hex"),
    ],
)
def test_decode_static_types_reject_bad_words(field: str, word: str, reason: str) -> None:
    spec = parse_event_signature(STATIC_EVENT)
    with pytest.raises(DecodeError, match=reason):
        spec.decoder()((spec.topic0,), _static_data(**{field: word}))


@pytest.mark.parametrize(
    ("typ", "topic", "reason"),
    [
        ("bool", _word(2), "Boolean must be either"),
        ("uint8", _word(256), "Padding bytes"),
        ("int8", _word(128), "Padding bytes"),
        ("address", "1" + "0" * 23 + ALICE[2:], "Padding bytes"),
        ("bytes1", "ab" + "0" * 61 + "1", "Padding bytes"),
    ],
)
def test_decode_indexed_value_types_reject_bad_topics(typ: str, topic: str, reason: str) -> None:
    spec = parse_event_signature(f"event T({typ} indexed x)")
    with pytest.raises(DecodeError, match=rf"topic 1 \({typ} indexed x\): {reason}"):
        spec.decoder()((spec.topic0, "0x" + topic), "0x")


DYNAMIC_EVENT = (
    "event D(string indexed label, address indexed who, string name, uint256[] ids, "
    "(address,bytes)[2] pairs, bytes blob, uint8 small)"
)


def _dynamic_log() -> tuple[tuple[str, ...], str, dict[str, Any]]:
    spec = parse_event_signature(DYNAMIC_EVENT)
    values: dict[str, Any] = {
        "label": keccak(b"label"),
        "who": BOB,
        "name": "naïve ✓",
        "ids": [1, 2, 2**256 - 1],
        "pairs": ((ALICE, b"x" * 40), (BOB, b"")),
        "blob": bytes(range(70)),
        "small": 7,
    }
    data = abi_encode(
        ["string", "uint256[]", "(address,bytes)[2]", "bytes", "uint8"],
        [values["name"], values["ids"], list(values["pairs"]), values["blob"], values["small"]],
    )
    topics = (spec.topic0, "0x" + values["label"].hex(), _addr_topic(BOB))
    # Our conventions: arrays are lists, tuples are tuples.
    values["pairs"] = [(ALICE, b"x" * 40), (BOB, b"")]
    return topics, "0x" + data.hex(), values


def test_decode_dynamic_types() -> None:
    decode = parse_event_signature(DYNAMIC_EVENT).decoder()
    topics, data, expected = _dynamic_log()
    got = decode(topics, data)
    assert got == expected
    assert type(got["ids"]) is list
    assert type(got["pairs"]) is list
    assert type(got["pairs"][0]) is tuple


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d + "00" * 32, r"the ABI encoding of its decoded values .* is \d+ bytes"),
        (lambda d: d[:-64], r"data does not decode as|ABI encoding of its decoded values"),
        (lambda d: d[:66], r"data does not decode as"),
        (lambda d: "0x", r"data does not decode as"),
    ],
)
def test_decode_dynamic_rejects(mutate: Any, reason: str) -> None:
    decode = parse_event_signature(DYNAMIC_EVENT).decoder()
    topics, data, _ = _dynamic_log()
    with pytest.raises(DecodeError, match=reason):
        decode(topics, mutate(data))


def test_decode_dynamic_rejects_bad_utf8_and_bad_topics() -> None:
    spec = parse_event_signature("event N(address indexed who, string name)")
    bad = "0x" + abi_encode(["bytes"], [b"\xff\xfe"]).hex()
    with pytest.raises(DecodeError, match="UnicodeDecodeError"):
        spec.decoder()((spec.topic0, _addr_topic(ALICE)), bad)
    good = "0x" + abi_encode(["string"], ["ok"]).hex()
    with pytest.raises(DecodeError, match="Padding bytes"):
        spec.decoder()((spec.topic0, "0x" + "f" * 24 + ALICE[2:]), good)


def test_decode_anonymous() -> None:
    spec = parse_event_signature("event A(address indexed a, uint256 indexed b, bool c) anonymous")
    decode = spec.decoder()
    topics = (_addr_topic(ALICE), "0x" + _word(5))
    assert decode(topics, "0x" + _word(1)) == {"a": ALICE, "b": 5, "c": True}
    with pytest.raises(DecodeError, match="expected 2 topics"):
        decode((spec.topic0, *topics), "0x" + _word(1))


def test_large_static_array_uses_eth_abi() -> None:
    # Too big to unroll: decoded through eth-abi, same conventions.
    spec = parse_event_signature("event Big(uint16[100] xs, address who)")
    values = list(range(100))
    data = "0x" + abi_encode(["uint16[100]", "address"], [values, ALICE]).hex()
    assert spec.decoder()((spec.topic0,), data) == {"xs": values, "who": ALICE}
    with pytest.raises(DecodeError, match="data is 3264 bytes"):
        spec.decoder()((spec.topic0,), data + "00" * 32)


# --------------------------------------------------------------------------
# Property test: random events, random values, eth_abi.encode round trip
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Gen:
    """An ABI type with a strategy for values in our decoded convention."""

    type: str
    values: st.SearchStrategy[Any]
    value_type: bool  # elementary static: stored directly in a topic


def _elementary() -> st.SearchStrategy[_Gen]:
    bits = st.integers(1, 32).map(lambda n: n * 8)
    return st.one_of(
        bits.map(lambda n: _Gen(f"uint{n}", st.integers(0, 2**n - 1), True)),
        bits.map(lambda n: _Gen(f"int{n}", st.integers(-(2 ** (n - 1)), 2 ** (n - 1) - 1), True)),
        st.just(
            _Gen("address", st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()), True)
        ),
        st.just(_Gen("bool", st.booleans(), True)),
        st.integers(1, 32).map(
            lambda n: _Gen(f"bytes{n}", st.binary(min_size=n, max_size=n), True)
        ),
        st.just(_Gen("bytes", st.binary(max_size=70), False)),
        st.just(
            _Gen("string", st.text(st.characters(exclude_categories=["Cs"]), max_size=20), False)
        ),
    )


def _extend(inner: st.SearchStrategy[_Gen]) -> st.SearchStrategy[_Gen]:
    def static_array(g: _Gen, k: int) -> _Gen:
        return _Gen(f"{g.type}[{k}]", st.lists(g.values, min_size=k, max_size=k), False)

    def dynamic_array(g: _Gen) -> _Gen:
        return _Gen(f"{g.type}[]", st.lists(g.values, max_size=3), False)

    def tuple_of(gs: list[_Gen]) -> _Gen:
        return _Gen(f"({','.join(g.type for g in gs)})", st.tuples(*(g.values for g in gs)), False)

    return st.one_of(
        st.builds(static_array, inner, st.integers(1, 3)),
        st.builds(dynamic_array, inner),
        st.lists(inner, min_size=1, max_size=3).map(tuple_of),
    )


_ABI_TYPES = st.recursive(_elementary(), _extend, max_leaves=4)


@st.composite
def _events(draw: st.DrawFn) -> tuple[EventSpec, tuple[str, ...], str, dict[str, Any]]:
    gens = draw(st.lists(_ABI_TYPES, max_size=5))
    flags = draw(st.lists(st.booleans(), min_size=len(gens), max_size=len(gens)))
    indexed_positions = [i for i, f in enumerate(flags) if f][:3]
    anonymous = draw(st.booleans())
    parts = [
        f"{g.type}{' indexed' if i in indexed_positions else ''} p{i}" for i, g in enumerate(gens)
    ]
    spec = parse_event_signature(f"event E({', '.join(parts)}){' anonymous' if anonymous else ''}")
    values = [draw(g.values) for g in gens]
    topics: list[str] = [] if anonymous else [spec.topic0]
    expected: dict[str, Any] = {}
    body_types: list[str] = []
    body_values: list[Any] = []
    for i, (g, v) in enumerate(zip(gens, values, strict=True)):
        if i in indexed_positions:
            if g.value_type:
                topics.append("0x" + abi_encode([g.type], [v]).hex())
                expected[f"p{i}"] = v
            else:
                digest = keccak(repr(v).encode())  # any 32 bytes: a hash of the value
                topics.append("0x" + digest.hex())
                expected[f"p{i}"] = digest
        else:
            body_types.append(g.type)
            body_values.append(v)
            expected[f"p{i}"] = v
    data = "0x" + abi_encode(body_types, body_values).hex()
    return spec, tuple(topics), data, expected


def _convention(typ: str, value: Any) -> Any:
    """eth_abi's decoded value in our convention (arrays as lists, recursively)."""
    spec = EventSpec("X", (Param("v", typ, False),))
    t = spec.types[0]

    def conv(t: Any, v: Any) -> Any:
        if t.kind == "array":
            return [conv(t.elem, x) for x in v]
        if t.kind == "tuple":
            return tuple(conv(c, x) for c, x in zip(t.comps, v, strict=True))
        return v

    return conv(t, value)


_PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPERTY
@given(_events())
def test_property_decoder_matches_eth_abi(
    case: tuple[EventSpec, tuple[str, ...], str, dict[str, Any]],
) -> None:
    spec, topics, data, expected = case
    decode = spec.decoder()
    got = decode(topics, data)
    assert got == expected
    assert list(got) == [p.name for p in spec.inputs]
    # Cross-check against eth_abi.decode directly.
    body = [p for p in spec.inputs if not p.indexed]
    decoded = abi_decode([p.type for p in body], bytes.fromhex(data[2:]))
    for p, v in zip(body, decoded, strict=True):
        assert got[p.name] == _convention(p.type, v)
    # Uppercase hex takes the slow reference path: it must agree with the fast one.
    upper_topics = tuple("0x" + t[2:].upper() for t in topics)
    assert decode(upper_topics, "0x" + data[2:].upper()) == got


@_PROPERTY
@given(_events(), st.data())
def test_property_malformed_logs_raise(
    case: tuple[EventSpec, tuple[str, ...], str, dict[str, Any]], data_strategy: st.DataObject
) -> None:
    spec, topics, data, _ = case
    decode = spec.decoder()
    mutations: list[tuple[tuple[str, ...], str]] = [
        ((*topics, "0x" + ZERO_WORD), data),  # one topic too many
        (topics, data + "00" * 32),  # trailing data
        (topics, data + "00"),  # trailing byte
    ]
    if topics:
        mutations.append((topics[:-1], data))  # one topic too few
    if len(data) > 2:
        mutations.append((topics, data[:-2]))  # truncated by a byte
        mutations.append((topics, data[:-64] if len(data) >= 66 else "0x"))  # truncated by a word
    topics_out, data_out = data_strategy.draw(st.sampled_from(mutations))
    with pytest.raises(DecodeError):
        decode(topics_out, data_out)


# Characters int(word, 16) takes that are not hex digits (separator, spaces,
# signs, a prefix, non-ASCII digits), uppercase hex, and plain non-hex letters.
_ODD_CHARS = st.sampled_from(
    ["_", " ", "\t", "+", "-", "x", "X", "g", "G", "\u0663", "A", "f", "0"]
)


@_PROPERTY
@given(_events(), st.data())
def test_property_fast_path_accepts_exactly_what_the_reference_accepts(
    case: tuple[EventSpec, tuple[str, ...], str, dict[str, Any]], data_strategy: st.DataObject
) -> None:
    """One character of a topic or of the data replaced: the generated decoder and the
    reference decoder agree, on the values or on raising DecodeError."""
    spec, topics, data, _ = case
    decode = spec.decoder()
    reference = _Layout(spec).reference_decode
    fields = [*topics, data]
    which = data_strategy.draw(st.integers(0, len(fields) - 1))
    if not fields[which]:
        return
    at = data_strategy.draw(st.integers(0, len(fields[which]) - 1))
    char = data_strategy.draw(_ODD_CHARS)
    fields[which] = fields[which][:at] + char + fields[which][at + 1 :]
    mutated_topics, mutated_data = tuple(fields[:-1]), fields[-1]
    try:
        expected = reference(mutated_topics, mutated_data)
    except DecodeError:
        with pytest.raises(DecodeError):
            decode(mutated_topics, mutated_data)
    else:
        assert decode(mutated_topics, mutated_data) == expected


@pytest.mark.parametrize(
    ("topic1", "data"),
    [
        # int() read these as 17 and the address as given, before the fast path checked hex.
        (_addr_topic(ALICE), "0x" + "0" * 61 + "1_1"),
        (_addr_topic(ALICE), "0x" + " " * 62 + "11"),
        (_addr_topic(ALICE), "0x+" + "0" * 61 + "11"),
        (_addr_topic(ALICE), "0x0x" + "0" * 60 + "11"),
        (_addr_topic(ALICE), "zz" + "0" * 62 + "11"),
        (_addr_topic(ALICE)[:-1] + "g", "0x" + "0" * 62 + "11"),
        (_addr_topic(ALICE)[:-2] + " 1", "0x" + "0" * 62 + "11"),
    ],
)
def test_decode_transfer_rejects_words_int_would_take(topic1: str, data: str) -> None:
    decode = parse_event_signature(TRANSFER).decoder()
    topics, _ = _transfer_log()
    with pytest.raises(DecodeError, match="not 0x-prefixed hex text"):
        decode((topics[0], topic1, topics[2]), data)


@_PROPERTY
@given(
    st.integers(1, 32).map(lambda n: n * 8),
    st.integers(0, 2**256 - 1),
    st.booleans(),
)
def test_property_integer_words(bits: int, word: int, signed: bool) -> None:
    """Any 256-bit word either decodes exactly as eth_abi does or raises DecodeError."""
    typ = f"{'int' if signed else 'uint'}{bits}"
    spec = parse_event_signature(f"event W({typ} indexed a, {typ} b)")
    hexword = "0x" + f"{word:064x}"
    raw = bytes.fromhex(hexword[2:])
    try:
        (expected,) = abi_decode([typ], raw)
    except DecodingError:
        with pytest.raises(DecodeError):
            spec.decoder()((spec.topic0, hexword), "0x" + _word(0))
        with pytest.raises(DecodeError):
            spec.decoder()((spec.topic0, "0x" + _word(0)), hexword)
        return
    assert spec.decoder()((spec.topic0, hexword), hexword) == {"a": expected, "b": expected}


_PADDED = parse_event_signature(
    "event P(address indexed a, bool indexed b, address c, bool d, bytes4 e)"
)


@_PROPERTY
@given(
    st.binary(min_size=20, max_size=20),
    st.binary(min_size=12, max_size=12).filter(any),
    st.integers(2, 2**256 - 1),
    st.binary(min_size=28, max_size=28).filter(any),
    st.sampled_from(["a", "b", "c", "d", "e"]),
)
def test_property_dirty_padding_and_bad_bools_raise(
    address: bytes, dirt: bytes, bool_word: int, tail: bytes, field: str
) -> None:
    decode = _PADDED.decoder()
    clean = {
        "a": "00" * 12 + address.hex(),
        "b": _word(1),
        "c": "00" * 12 + address.hex(),
        "d": _word(0),
        "e": "cafe0001" + "00" * 28,
    }

    def log(words: dict[str, str]) -> tuple[tuple[str, ...], str]:
        topics = (_PADDED.topic0, "0x" + words["a"], "0x" + words["b"])
        return topics, "0x" + words["c"] + words["d"] + words["e"]

    addr = "0x" + address.hex()
    assert decode(*log(clean)) == {
        "a": addr,
        "b": True,
        "c": addr,
        "d": False,
        "e": b"\xca\xfe\x00\x01",
    }
    bad = dict(clean)
    if field in ("a", "c"):
        bad[field] = dirt.hex() + address.hex()  # non-zero bytes in the 12 padding bytes
    elif field in ("b", "d"):
        bad[field] = _word(bool_word)  # a bool must be 0 or 1
    else:
        bad[field] = "cafe0001" + tail.hex()  # bytes4 must be right-padded with zeros
    with pytest.raises(DecodeError, match=r"Padding bytes|Boolean must be either"):
        decode(*log(bad))


# --------------------------------------------------------------------------
# Real data: every Transfer-topic log of 51 mainnet blocks
# --------------------------------------------------------------------------


def _real_transfer_logs() -> list[dict[str, Any]]:
    for directory in _DATA_DIRS:
        path = directory / _DATA_NAME
        if path.is_file():
            with gzip.open(path, "rb") as f:
                rows = [orjson.loads(line) for line in f]
            return [r for r in rows if r["topics"] and r["topics"][0] == TRANSFER_TOPIC0]
    pytest.fail(f"shared data file {_DATA_NAME} not found in {[str(d) for d in _DATA_DIRS]}")


def test_real_erc20_transfers() -> None:
    logs = _real_transfer_logs()
    assert len(logs) == 7800
    decode = parse_event_signature(TRANSFER).decoder()
    decoded = 0
    rejected = 0
    for i, log in enumerate(logs):
        topics = tuple(log["topics"])
        if len(topics) == 4:
            # ERC721 Transfer: same topic0, tokenId indexed, no data.
            with pytest.raises(DecodeError, match="expected 3 topics"):
                decode(topics, log["data"])
            rejected += 1
            continue
        got = decode(topics, log["data"])
        decoded += 1
        if i % 7 == 0:  # a sample against eth_abi (it is ~25x slower)
            raw = bytes.fromhex(topics[1][2:] + topics[2][2:] + log["data"][2:])
            frm, to, value = abi_decode(["address", "address", "uint256"], raw)
            assert got == {"from": frm, "to": to, "value": value}
    assert (decoded, rejected) == (7430, 370)
