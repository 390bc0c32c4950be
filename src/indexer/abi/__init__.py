"""Event ABIs: parse them, and decode logs with them fast.

INTERNAL: this package is the framework's own; its names may change in any
release.  Users get events already decoded (:class:`indexer.Event`), and
:mod:`indexer.testing` builds logs and events from signatures.

An :class:`EventSpec` describes one event.  It comes from a human-readable
signature (:func:`parse_event_signature`) or from ABI JSON
(:func:`events_from_abi`).  ``spec.decoder()`` gives a function
``decode(topics, data) -> dict`` built for that one event
(:func:`compile_decoder`).

Decoded values follow one convention, relied on by handlers and entity
code: ``uintN``/``intN`` -> ``int`` (``intN`` signed), ``address`` ->
lowercase ``0x`` + 40 hex digits ``str``, ``bool`` -> ``bool``,
``bytes``/``bytesN`` -> ``bytes``, ``string`` -> ``str``, arrays -> ``list``,
tuples -> ``tuple``.  An indexed parameter of a dynamic type (``string``,
``bytes``, arrays, tuples) is stored in its topic as a keccak hash, so it
comes out as the 32 topic bytes.

Modules: ``_types`` (the type model and the type grammar), ``_event``
(EventSpec), ``_parse`` (signatures and ABI JSON), ``_compile`` (the
reference decoder and the generated fast path).
"""

from ._compile import Decoder as Decoder
from ._compile import abi_decode as abi_decode
from ._compile import compile_decoder as compile_decoder
from ._event import EventSpec as EventSpec
from ._event import Param as Param
from ._parse import events_from_abi as events_from_abi
from ._parse import parse_event_signature as parse_event_signature
from ._types import AbiType as AbiType
from ._types import parse_type as parse_type

__all__ = [
    "AbiType",
    "Decoder",
    "EventSpec",
    "Param",
    "abi_decode",
    "compile_decoder",
    "events_from_abi",
    "parse_event_signature",
    "parse_type",
]
