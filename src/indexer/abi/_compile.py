"""Decoding logs with an :class:`EventSpec`: a strict reference decoder, and the
generated fast path built from it.

The fast path reads static types straight from the hex text of topics and
data; anything it does not handle, or any doubt, defers to the reference
decoder, which is the authority on what is valid and on the error message.

Speed: the decoder runs once per event.  For each spec we generate (with
``exec``) a small function without loops that reads static values straight
from the hex text: ``bytes.fromhex`` and ``int.from_bytes`` for integers,
slices for addresses.  Data holding dynamic
types goes through ``eth_abi.decode``.  The fast function checks what a
strict ABI decoder checks: topic count, topic0, exact lengths, zero padding
of addresses and ``bytesN``, ``bool`` being 0 or 1, and integer ranges
(sign extension included).  When any check fails it hands the log to a slow
reference decoder.  That decoder works on bytes and eth-abi and checks every
character.  It raises :class:`~indexer.DecodeError` with the exact reason,
or it returns the values when the fast path only refused an unusual but
valid spelling, such as an uppercase topic0.

The fast path accepts exactly what the reference decoder accepts: every
character it reads is checked.  Words go through ``bytes.fromhex``, which
takes only hex digits (and spaces between pairs, which would make its result
short, so its length is checked); an address's 40 characters are checked
the same way before they are copied.  Not ``int(word, 16)``: it also takes
``_`` between digits, spaces, a sign and a ``0x`` prefix, and a log file
holding such a word was once decoded as if it were valid
(``tests/test_abi.py``, the property test on mutated characters).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._errors import DecodeError
from ._types import AbiType

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ._event import EventSpec

__all__ = ["Decoder", "abi_decode", "compile_decoder"]

#: A compiled event decoder: ``decode(topics, data hex) -> {name: value}``.
Decoder = Callable[[tuple[str, ...], str], dict[str, Any]]


def abi_decode(types: Sequence[str], data: bytes) -> tuple[Any, ...]:
    """``eth_abi.decode``, imported on first use.

    eth-abi (with eth-utils) takes about half a second to import; events
    with only static types never need it, and startup time is resume time.
    Its DecodingError comes out as ValueError, which the generated fast
    path already treats as "defer to the reference decoder".
    """
    from eth_abi.abi import decode
    from eth_abi.exceptions import DecodingError

    try:
        return tuple(decode(list(types), data))
    except DecodingError as exc:
        raise ValueError(str(exc)) from exc


# --------------------------------------------------------------------------
# Reference (slow, precise) decoding
# --------------------------------------------------------------------------

_HEX_RE = re.compile(r"0[xX]([0-9a-fA-F]*)")


def _hex_bytes(value: object, what: str) -> bytes:
    """Strictly convert ``0x`` hex text to bytes, or raise DecodeError saying why."""
    if not isinstance(value, str):
        raise DecodeError(f"{what} is a {type(value).__name__}, not a hex string")
    m = _HEX_RE.fullmatch(value)
    if m is None:
        raise DecodeError(f"{what} is not 0x-prefixed hex text: {_short(value)}")
    digits = m.group(1)
    if len(digits) % 2:
        raise DecodeError(f"{what} has an odd number of hex digits ({len(digits)})")
    return bytes.fromhex(digits)


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _converter(typ: AbiType) -> Callable[[Any], Any] | None:
    """Map eth-abi's output for ``typ`` to our convention (None when it already fits)."""
    if typ.kind == "address":
        return str.lower
    if typ.kind == "array":
        assert typ.elem is not None
        inner = _converter(typ.elem)
        if inner is None:
            return list
        conv = inner
        return lambda v: [conv(x) for x in v]
    if typ.kind == "tuple":
        convs = [_converter(c) for c in typ.comps]
        if all(c is None for c in convs):
            return None
        pairs = [(c if c is not None else _identity) for c in convs]
        return lambda v: tuple(c(x) for c, x in zip(pairs, v, strict=True))
    return None


def _identity(value: Any) -> Any:
    return value


def _encoded_size(typ: AbiType, value: Any) -> int:
    """Bytes the canonical encoding of ``value`` takes in its tail (dynamic) or head (static)."""
    if not typ.dynamic:
        return 32 * typ.words
    if typ.kind == "bytes":
        return 32 + -(-len(value) // 32) * 32
    if typ.kind == "string":
        return 32 + -(-len(value.encode("utf-8")) // 32) * 32
    if typ.kind == "array":
        assert typ.elem is not None
        elem = typ.elem
        size = 0 if typ.length is not None else 32  # the length word
        for item in value:
            size += 32 + _encoded_size(elem, item) if elem.dynamic else 32 * elem.words
        return size
    # dynamic tuple
    return sum(
        32 + _encoded_size(c, v) if c.dynamic else 32 * c.words
        for c, v in zip(typ.comps, value, strict=True)
    )


class _Layout:
    """Everything about a spec that both decoding paths need, computed once."""

    def __init__(self, spec: EventSpec) -> None:
        self.spec = spec
        self.topic0 = spec.topic0
        self.topic_count = spec.topic_count
        self.indexed = [(p, t) for p, t in zip(spec.inputs, spec.types, strict=True) if p.indexed]
        self.body = [(p, t) for p, t in zip(spec.inputs, spec.types, strict=True) if not p.indexed]
        self.body_types = [t.canonical for _, t in self.body]
        self.body_tuple = AbiType("tuple", comps=tuple(t for _, t in self.body))
        self.body_static = not self.body_tuple.dynamic
        self.body_words = self.body_tuple.words if self.body else 0
        self.body_convs = [_converter(t) for _, t in self.body]
        self.topic_convs = [_converter(t) for _, t in self.indexed]

    def describe_body(self) -> str:
        return ", ".join(f"{t.canonical} {p.name}" for p, t in self.body) or "nothing"

    def decode_body(self, data: str) -> list[Any]:
        """Decode the non-indexed values from ``data`` hex with eth-abi, strictly."""
        raw = _hex_bytes(data, "data")
        if not self.body:
            if raw:
                raise DecodeError(
                    f"data should be empty ({self.spec.name} has no non-indexed inputs), "
                    f"got {len(raw)} bytes"
                )
            return []
        if self.body_static:
            expected = 32 * self.body_words
            if len(raw) != expected:
                raise DecodeError(
                    f"data is {len(raw)} bytes, but {self.spec.name}'s non-indexed inputs "
                    f"({self.describe_body()}) take exactly {expected}"
                )
            # Decode one input at a time so an error names the input.
            values: list[Any] = []
            offset = 0
            for (param, typ), conv in zip(self.body, self.body_convs, strict=True):
                size = 32 * typ.words
                chunk = raw[offset : offset + size]
                try:
                    (value,) = abi_decode([typ.canonical], chunk)
                except Exception as exc:
                    raise DecodeError(
                        f"data bytes {offset}..{offset + size - 1} ({typ.canonical} {param.name}): {exc}"
                    ) from None
                values.append(conv(value) if conv is not None else value)
                offset += size
            return values
        try:
            decoded = abi_decode(self.body_types, raw)
        except Exception as exc:
            raise DecodeError(
                f"data does not decode as ({self.describe_body()}): {type(exc).__name__}: {exc}"
            ) from None
        expected = _encoded_size(self.body_tuple, decoded)
        if len(raw) != expected:
            raise DecodeError(
                f"data is {len(raw)} bytes, but the ABI encoding of its decoded values "
                f"({self.describe_body()}) is {expected} bytes"
            )
        return [
            conv(v) if conv is not None else v
            for v, conv in zip(decoded, self.body_convs, strict=True)
        ]

    def decode_topic(self, position: int, topic: object) -> Any:
        """Decode indexed input ``position`` from its topic, strictly."""
        param, typ = self.indexed[position]
        topic_no = position + (0 if self.spec.anonymous else 1)
        what = f"topic {topic_no} ({typ.canonical} indexed {param.name})"
        raw = _hex_bytes(topic, what)
        if len(raw) != 32:
            raise DecodeError(f"{what} is {len(raw)} bytes, not 32")
        if not typ.is_value:
            return raw  # a keccak hash of the value: keep the 32 bytes
        try:
            (value,) = abi_decode([typ.canonical], raw)
        except Exception as exc:
            raise DecodeError(f"{what}: {exc}") from None
        conv = self.topic_convs[position]
        return conv(value) if conv is not None else value

    def reference_decode(self, topics: Sequence[str], data: str) -> dict[str, Any]:
        """Decode with full checks; raise DecodeError with the first problem found."""
        spec = self.spec
        if not isinstance(topics, (tuple, list)):
            raise DecodeError(f"topics is a {type(topics).__name__}, not a tuple of hex strings")
        if len(topics) != self.topic_count:
            raise DecodeError(
                f"expected {self.topic_count} topics for {spec.signature} "
                f"({'' if spec.anonymous else 'topic0 and '}{len(self.indexed)} indexed), "
                f"got {len(topics)}"
            )
        first = 0
        if not spec.anonymous:
            t0 = topics[0]
            if not isinstance(t0, str) or t0.lower() != self.topic0:
                raise DecodeError(
                    f"topic0 {t0!r} is not the topic0 of {spec.signature} ({self.topic0})"
                )
            first = 1
        out: dict[str, Any] = {}
        by_name: dict[str, Any] = {}
        for position in range(len(self.indexed)):
            by_name[self.indexed[position][0].name] = self.decode_topic(
                position, topics[first + position]
            )
        body_values = self.decode_body(data)
        body_iter: Iterator[Any] = iter(body_values)
        for param in spec.inputs:
            out[param.name] = by_name[param.name] if param.indexed else next(body_iter)
        return out


# --------------------------------------------------------------------------
# Fast-path code generation
# --------------------------------------------------------------------------

# The fast path gives up (and defers to the reference decoder) on these.
_FAST_FAILURES: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
)

# Unrolling a huge static array into straight-line code would bloat the
# function for no gain; such events use eth-abi for their data instead.
_MAX_UNROLLED_WORDS = 64

_Z = "0" * 64


class _Gen:
    """Emit the body of one generated decoder as straight-line code."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {}
        self.counter = 0

    def var(self) -> str:
        self.counter += 1
        return f"v{self.counter}"

    def const(self, value: Any) -> str:
        for name, known in self.ns.items():
            if type(known) is type(value) and known == value:
                return name
        name = f"K{len(self.ns)}"
        self.ns[name] = value
        return name

    def bail(self, condition: str) -> None:
        self.lines.append(f"if {condition}:")
        self.lines.append("    return _ref(topics, data)")

    def word_value(self, typ: AbiType, src: str, start: int, whole: bool) -> str:
        """Code for an elementary static value in the 64 hex digits src[start:start+64].

        ``whole`` says ``src`` is exactly ``0x`` + those 64 digits (a topic, or
        one-word data), so an address check can cover the ``0x`` for free.
        Integers are always parsed from a 64-digit slice: that bounds the
        value to 256 bits by construction, whatever the string holds.
        """
        end = start + 64
        word = f"{src}[{start}:{end}]"
        v = self.var()
        kind, size = typ.kind, typ.size
        if kind in ("uint", "int"):
            # Not int(word, 16): it also takes "_" between digits, spaces
            # around them, a sign or a 0x prefix.  bytes.fromhex takes only
            # hex digits, and spaces between pairs, which shorten its result.
            self.lines.append(f"{v} = _fromhex({word})")
            self.bail(f"len({v}) != 32")
            self.lines.append(f"{v} = _from_bytes({v}, 'big')")
            if kind == "uint":
                # 32 bytes always fit 256 bits; narrower types must have zero high bits.
                if size < 256:
                    self.bail(f"{v} >> {size}")
            else:
                self.lines.append(f"if {v} >> 255:")
                self.lines.append(f"    {v} -= {1 << 256}")
                if size < 256:
                    # Inside the range iff the sign extension over the padding is consistent.
                    self.bail(f"not {-(1 << (size - 1))} <= {v} < {1 << (size - 1)}")
        elif kind == "address":
            if whole:
                # A topic: compare the "0x" too, for free (same slice cost).
                self.bail(f"{src}[:26] != {self.const('0x' + _Z[:24])}")
            else:
                self.bail(f"{src}[{start}:{start + 24}] != {self.const(_Z[:24])}")
            # The 40 characters are copied, not parsed: check that they are hex.
            self.lines.append(f"{v} = {src}[{start + 24}:{end}]")
            self.bail(f"len(_fromhex({v})) != 20")
            self.lines.append(f'{v} = "0x" + {v}.lower()')
        elif kind == "bool":
            bools = self.const({_Z: False, _Z[:-1] + "1": True})
            self.lines.append(f"{v} = {bools}.get({word})")
            self.bail(f"{v} is None")
        elif kind == "bytesN":
            if size < 32:
                self.bail(f"{src}[{start + 2 * size}:{end}] != {self.const(_Z[: 64 - 2 * size])}")
                self.lines.append(f"{v} = _fromhex({src}[{start}:{start + 2 * size}])")
            else:
                self.lines.append(f"{v} = _fromhex({word})")
            self.bail(f"len({v}) != {size}")
        else:  # pragma: no cover - callers only pass value types
            raise AssertionError(kind)
        return v

    def static_value(self, typ: AbiType, start: int, whole: bool = False) -> tuple[str, int]:
        """Code for a static (possibly nested) value at hex offset ``start`` of data.

        ``whole``: the data is exactly this one word, so an address check covers the ``0x``.
        """
        if typ.is_value:
            return self.word_value(typ, "data", start, whole), start + 64
        if typ.kind == "array":
            assert typ.elem is not None
            assert typ.length is not None
            items = []
            for _ in range(typ.length):
                expr, start = self.static_value(typ.elem, start)
                items.append(expr)
            return f"[{', '.join(items)}]", start
        assert typ.kind == "tuple"
        items = []
        for comp in typ.comps:
            expr, start = self.static_value(comp, start)
            items.append(expr)
        return f"({', '.join(items)}{',' if len(items) == 1 else ''})", start


def compile_decoder(spec: EventSpec) -> Decoder:
    """Generate, exec and return the decoder function of ``spec``."""
    layout = _Layout(spec)
    gen = _Gen()
    n_topics = layout.topic_count
    body_words = layout.body_words
    unroll = layout.body_static and body_words <= _MAX_UNROLLED_WORDS

    # Shape checks first: they are what tells an ERC721 Transfer from an ERC20 one.
    shape = [f"len(topics) != {n_topics}"]
    if unroll:
        shape.append(f"len(data) != {2 + 64 * body_words}")
    if not spec.anonymous:
        shape.append(f"topics[0] != {gen.const(layout.topic0)}")
    if unroll:
        # Read here word by word from offset 2, so the prefix is checked once.
        shape.append('data[:2] != "0x"')
    gen.bail(" or ".join(shape))

    exprs: dict[str, str] = {}
    first = 0 if spec.anonymous else 1
    topic_vars = [f"t{first + i}" for i in range(len(layout.indexed))]
    if topic_vars:
        targets = ([] if spec.anonymous else ["_"]) + topic_vars
        gen.lines.append(f"{', '.join(targets)}{',' if len(targets) == 1 else ''} = topics")
        gen.bail(" or ".join(f"len({t}) != 66" for t in topic_vars))
    for (param, typ), tvar in zip(layout.indexed, topic_vars, strict=True):
        if typ.kind != "address":
            # An address topic's check covers its "0x" (word_value).
            gen.bail(f'{tvar}[:2] != "0x"')
        if typ.is_value:
            exprs[param.name] = gen.word_value(typ, tvar, 2, True)
        else:
            v = gen.var()
            gen.lines.append(f"{v} = _fromhex({tvar}[2:])")
            gen.bail(f"len({v}) != 32")
            exprs[param.name] = v

    if layout.body:
        if unroll:
            start = 2
            for param, typ in layout.body:
                exprs[param.name], start = gen.static_value(typ, start, body_words == 1)
        else:
            body_vars = [gen.var() for _ in layout.body]
            gen.ns["_body"] = layout.decode_body
            gen.lines.append(
                f"{', '.join(body_vars)}{',' if len(body_vars) == 1 else ''} = _body(data)"
            )
            for (param, _), v in zip(layout.body, body_vars, strict=True):
                exprs[param.name] = v
    items = ", ".join(f"{p.name!r}: {exprs[p.name]}" for p in spec.inputs)
    gen.lines.append(f"return {{{items}}}")

    namespace: dict[str, Any] = {
        "_ref": layout.reference_decode,
        "_fromhex": bytes.fromhex,
        "_from_bytes": int.from_bytes,
        "_FAIL": _FAST_FAILURES,
        **gen.ns,
    }
    # Constants come in as keyword-only defaults: locals are read faster than globals.
    bound = ", ".join(f"{name}={name}" for name in namespace)
    src_lines = [f"def decode(topics, data, *, {bound}):", "    try:"]
    src_lines += [f"        {line}" for line in gen.lines]
    src_lines += ["    except _FAIL:", "        pass", "    return _ref(topics, data)"]
    source = "\n".join(src_lines) + "\n"
    code = compile(source, f"<indexer decoder for {spec.signature}>", "exec")
    exec(code, namespace)
    decode: Decoder = namespace["decode"]
    decode.__doc__ = f"Decode a {spec.signature} log: (topics, data hex) -> params dict."
    decode.__qualname__ = f"decode_{spec.name}"
    decode._source = source  # type: ignore[attr-defined]  # kept for debugging
    return decode
