"""Validation helpers for loading ``indexer.yaml`` (``_project.py``).

Everything here turns loosely typed YAML/JSON data into checked Python values
and, when that fails, raises `ConfigError` with one paragraph that names the
file and the key path (``chains[0].contracts[1].events[2]``) of the culprit.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import yaml

from .._errors import ConfigError
from ..abi import EventSpec, events_from_abi, parse_event_signature

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

__all__ = [
    "Routed",
    "Where",
    "as_bool",
    "as_float",
    "as_int",
    "as_list",
    "as_str",
    "check_routing",
    "describe",
    "load_abi",
    "load_yaml",
    "read_mapping",
    "resolve_events",
    "resolve_path",
]

_EXAMPLE_EVENT = '"event Transfer(address indexed from, address indexed to, uint256 value)"'
_BARE_NAME_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


class Routed(Protocol):
    """What `check_routing` needs of a contract (structurally, a ``ContractConfig``)."""

    @property
    def name(self) -> str: ...
    @property
    def addresses(self) -> frozenset[str] | None: ...
    @property
    def events(self) -> tuple[EventSpec, ...]: ...
    @property
    def factory(self) -> object | None: ...


@dataclass(frozen=True, slots=True)
class Where:
    """A position in a config file: the file label plus a key path like ``chains[0].source``."""

    file: str
    path: str = ""

    def key(self, name: str) -> Where:
        """The position of mapping key `name` below this one."""
        return Where(self.file, f"{self.path}.{name}" if self.path else name)

    def item(self, index: int) -> Where:
        """The position of list item `index` below this one."""
        return Where(self.file, f"{self.path}[{index}]")

    def fail(self, message: str) -> NoReturn:
        """Raise `ConfigError` for this position."""
        raise ConfigError(
            f"{self.file}: {self.path}: {message}" if self.path else f"{self.file}: {message}"
        )


class _Loader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate keys.

    Plain PyYAML lets the last duplicate win silently, which would make e.g. a
    second ``chains:`` block quietly replace the first.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        # Checked before merge keys (``<<``) are flattened in, because explicit
        # keys overriding merged ones is legitimate YAML.
        for key_node, _ in node.value:
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag == "tag:yaml.org,2002:merge"
            ):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml(path: Path, label: str) -> object:
    """Read and parse the YAML file at `path`, reporting problems as ``{label}: ...``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{label}: file not found. A project directory must contain an indexer.yaml "
            f"(looked for {path.resolve()})."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read the file: {exc}.") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = "; ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{label}: {where}invalid YAML: {problem}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: invalid YAML: {exc}.") from None


def describe(value: object) -> str:
    """A short human description of a parsed YAML value, for error messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def read_mapping(
    value: object, at: Where, allowed: Sequence[str], required: Sequence[str]
) -> dict[str, object]:
    """Check that `value` is a mapping with only `allowed` keys and all `required` ones."""
    place = f"in {at.path}" if at.path else "at the top level"
    if not isinstance(value, dict):
        at.fail(f"must be a mapping (key: value lines), got {describe(value)}.")
    listing = ", ".join(allowed)
    for key in value:
        if not isinstance(key, str):
            # YAML 1.1 reads yes/no/on/off as booleans and digits as numbers,
            # so a key can arrive as something that is not text at all.
            at.fail(
                f"key {key!r} is not a text key (YAML reads yes/no/on/off as booleans and "
                f"digits as numbers). The keys allowed {place} are: {listing}."
            )
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            at.key(key).fail(f"unknown key.{hint} The keys allowed {place} are: {listing}.")
    for key in required:
        if key not in value:
            at.key(key).fail(f"this required key is missing {place}. Allowed keys: {listing}.")
    return value


def as_str(value: object, at: Where) -> str:
    """`value` as a non-empty string."""
    if not isinstance(value, str):
        at.fail(f"must be a string, got {describe(value)}.")
    if not value.strip():
        at.fail("must not be empty.")
    return value


def as_int(value: object, at: Where, *, minimum: int) -> int:
    """`value` as an int >= `minimum`; booleans are rejected although Python calls them ints."""
    if isinstance(value, bool) or not isinstance(value, int):
        at.fail(f"must be an integer, got {describe(value)}.")
    if value < minimum:
        at.fail(f"must be an integer >= {minimum}, got {value}.")
    return value


def as_bool(value: object, at: Where) -> bool:
    """`value` as a bool."""
    if not isinstance(value, bool):
        at.fail(f"must be true or false, got {describe(value)}.")
    return value


def as_float(value: object, at: Where) -> float:
    """`value` as a finite float > 0 (ints are accepted, booleans are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        at.fail(f"must be a number, got {describe(value)}.")
    if not math.isfinite(value) or value <= 0:
        at.fail(f"must be a number > 0, got {value!r}.")
    return float(value)


def as_list(value: object, at: Where, *, what: str) -> list[object]:
    """`value` as a non-empty list; `what` names the items in the error message."""
    if not isinstance(value, list):
        at.fail(f"must be a list of {what}, got {describe(value)}.")
    if not value:
        at.fail(f"must list at least one of {what}.")
    return value


def resolve_path(value: object, at: Where, project_dir: Path) -> Path:
    """`value` as a path, made absolute relative to `project_dir` (``~`` is expanded)."""
    path = Path(as_str(value, at)).expanduser()
    return (path if path.is_absolute() else project_dir / path).resolve()


def load_abi(value: object, at: Where, project_dir: Path) -> tuple[Path, list[EventSpec]]:
    """Load the ABI JSON file named by `value`; return its resolved path and events."""
    path = resolve_path(value, at, project_dir)
    if not path.is_file():
        at.fail(f"ABI file {path} does not exist{' (it is a directory)' if path.exists() else ''}.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        at.fail(
            f"ABI file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        )
    except (OSError, UnicodeDecodeError) as exc:
        at.fail(f"cannot read ABI file {path}: {exc}.")
    if not isinstance(data, list):
        hint = ""
        if isinstance(data, dict) and "abi" in data:
            hint = ' It looks like a compiler artifact; save just its "abi" array to the file.'
        at.fail(
            f"ABI file {path} must hold a JSON list (a standard ABI), got {_json_kind(data)}.{hint}"
        )
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            at.fail(f"ABI file {path}: entry {i} must be a JSON object, got {_json_kind(entry)}.")
    try:
        return path, events_from_abi(data)
    except (ValueError, KeyError, TypeError) as exc:
        at.fail(f"ABI file {path} is not a valid ABI: {exc}.")


def _json_kind(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return kinds.get(type(value), "null" if value is None else "a number")


def resolve_events(
    events_value: object, abi_value: object, at: Where, project_dir: Path, contract: str
) -> tuple[EventSpec, ...]:
    """The events a contract indexes, from its ``events`` and ``abi`` keys.

    ``events`` entries are full signatures or, with ``abi``, bare event names.
    If any bare name is given the ABI only contributes the named events;
    otherwise all its events are added.  Anonymous ABI events are skipped when
    adding all: a log of one carries no topic0, so it could never be routed.
    """
    abi: tuple[Path, list[EventSpec]] | None = None
    if abi_value is not None:
        abi = load_abi(abi_value, at.key("abi"), project_dir)
    chosen: list[tuple[EventSpec, Where, str]] = []
    named_any = False
    entries = [] if events_value is None else as_list(events_value, at.key("events"), what="events")
    for i, entry in enumerate(entries):
        here = at.key("events").item(i)
        text = as_str(entry, here).strip()
        if _BARE_NAME_RE.fullmatch(text):
            named_any = True
            chosen.extend((spec, here, repr(text)) for spec in _select(text, abi, here))
            continue
        try:
            spec = parse_event_signature(text)
        except ValueError as exc:
            here.fail(
                f"{text!r} is not a valid event signature: {str(exc).rstrip('.')}. "
                f"Write it as in Solidity, e.g. {_EXAMPLE_EVENT}."
            )
        if spec.anonymous:
            here.fail(f"{text!r} is anonymous; its logs have no topic0, so they cannot be indexed.")
        chosen.append((spec, here, repr(text)))
    if abi is not None and not named_any:
        where = at.key("abi")
        chosen.extend((s, where, f"ABI event {s.signature}") for s in abi[1] if not s.anonymous)
    if not chosen:
        at.fail(
            f"contract {contract!r} indexes no events. Add `events` (e.g. {_EXAMPLE_EVENT}) or an `abi` file."
        )
    first: dict[str, tuple[Where, str]] = {}
    for spec, here, origin in chosen:
        if spec.topic0 in first:
            prev_at, prev_origin = first[spec.topic0]
            hint = (
                " (Without bare names in `events`, every event of the ABI is added: drop the "
                "signature, or pick ABI events by bare name.)"
                if origin.startswith("ABI event") and not prev_origin.startswith("ABI event")
                else ""
            )
            here.fail(
                f"{origin} is the same event as {prev_origin} ({prev_at.path}): both are "
                f"{spec.signature} (topic0 {spec.topic0}). Contract {contract!r} must list "
                f"each event once.{hint}"
            )
        first[spec.topic0] = (here, origin)
    return tuple(spec for spec, _, _ in chosen)


def _select(name: str, abi: tuple[Path, list[EventSpec]] | None, at: Where) -> list[EventSpec]:
    """The non-anonymous events called `name` in `abi` (all overloads)."""
    if abi is None:
        at.fail(
            f"{name!r} is a bare event name, which needs an `abi` file to look it up. "
            f"Add `abi:` to this contract or write the full signature, e.g. {_EXAMPLE_EVENT}."
        )
    path, specs = abi
    found = [s for s in specs if s.name == name]
    if not found:
        names = sorted({s.name for s in specs})
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        at.fail(
            f"event {name!r} is not in the ABI {path}.{hint} "
            f"Events in that ABI: {', '.join(names) or 'none'}."
        )
    usable = [s for s in found if not s.anonymous]
    if not usable:
        at.fail(
            f"event {name!r} in the ABI {path} is anonymous; its logs have no topic0, so it cannot be indexed."
        )
    return usable


def check_routing(contracts: Sequence[Routed], at: Where) -> None:
    """Reject a topic0 claimed by two contracts unless both have explicit, disjoint addresses.

    Otherwise one log would match both contracts and its handler would be ambiguous.
    """
    claimed: dict[str, list[tuple[int, Routed]]] = {}
    for i, contract in enumerate(contracts):
        for spec in contract.events:
            for j, other in claimed.get(spec.topic0, []):
                if contract.factory is not None and other.factory is not None:
                    why = (
                        "both are factory children, and an address registered as both would match "
                        "both"
                    )
                elif (contract.addresses is None and contract.factory is None) or (
                    other.addresses is None and other.factory is None
                ):
                    wild = (
                        other.name
                        if other.addresses is None and other.factory is None
                        else contract.name
                    )
                    why = f"contract {wild!r} has no `addresses`, so it matches every address"
                elif contract.addresses is None or other.addresses is None:
                    # A child and a listed address: the listed contract's routes come
                    # first (sources/_decode.py), so no log is ambiguous.
                    continue
                elif overlap := contract.addresses & other.addresses:
                    why = f"both list {', '.join(sorted(overlap))}"
                else:
                    continue
                hint = (
                    "Index both kinds of children as one contract whose `factory.event` lists the "
                    "events that register them"
                    if contract.factory is not None and other.factory is not None
                    else "Give both contracts explicit `addresses` lists with no address in common"
                )
                at.item(i).fail(
                    f"contracts {other.name!r} (contracts[{j}]) and {contract.name!r} both index "
                    f"{spec.signature} (topic0 {spec.topic0}) and {why}; a log would match both. "
                    f"{hint}."
                )
            claimed.setdefault(spec.topic0, []).append((i, contract))
