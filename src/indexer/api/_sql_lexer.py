"""A tokenizer that splits SQL text the way PostgreSQL's lexer (scan.l) does.

The SQL endpoint decides what a query may contain from these tokens, so the
one thing that matters is agreeing with the server on where strings,
comments and quoted identifiers begin and end: a disagreement would let text
the check took for a string run as code.  The rules followed, from scan.l
(PostgreSQL 13 and later):

- whitespace is ``[ \\t\\n\\r\\f\\v]``; ``--`` comments run to ``\\n`` or
  ``\\r``; ``/* */`` comments nest;
- ``'...'`` doubles quotes (``standard_conforming_strings`` on, so a
  backslash is an ordinary character); ``E'...'`` also escapes with a
  backslash; ``B'...'`` and ``X'...'`` have neither; ``N'...'`` and
  ``U&'...'`` are like ``'...'``;
- a string closed by ``'`` continues when whitespace holding a newline (and
  ``--`` comments) leads to another ``'``, in the same kind of string;
- ``"..."`` and ``U&"..."`` identifiers double ``"``;
- ``$tag$...$tag$`` with a tag of identifier characters but ``$``; ``$1`` is a
  parameter; identifiers contain ``$`` and any non-ASCII character;
- a string prefix (``E``, ``B``, ``X``, ``N``, ``U&``) counts only at the
  start of a token: ``some'x'`` is the identifier ``some`` and a string.

Numbers are scanned as digit runs only: PostgreSQL 15+ rejects ``1e'x'`` and
``1select`` ("trailing junk"), older servers split them as this does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["LexError", "Token", "tokenize"]

Kind = Literal["word", "ident", "uident", "string", "param", "number", "op"]

_SPACE = frozenset(" \t\n\r\f\v")
_NEWLINE = frozenset("\n\r")
_DIGITS = frozenset("0123456789")
_DOLLAR_DELIM = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class LexError(Exception):
    """The text cannot be split into tokens (an unterminated string, comment...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Token:
    """One token: ``value`` is lower-cased for words (ASCII only, as PostgreSQL
    folds), the unescaped name for quoted identifiers, the number for
    parameters, the character for operators and punctuation."""

    kind: Kind
    value: str
    pos: int  # 0-based offset of the token's first character

    @property
    def char(self) -> int:
        """1-based position, as PostgreSQL reports them."""
        return self.pos + 1


def _ident_start(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z") or c == "_" or c >= "\x80"


def _ident_cont(c: str) -> bool:
    return _ident_start(c) or c in _DIGITS or c == "$"


def _end_of_line(text: str, i: int) -> int:
    """The index of the first newline at or after ``i`` (``len(text)`` if none)."""
    n = len(text)
    while i < n and text[i] not in _NEWLINE:
        i += 1
    return i


def _skip_block_comment(text: str, start: int) -> int:
    depth, i, n = 1, start + 2, len(text)
    while depth:
        if i >= n:
            raise LexError(f"unterminated /* comment starting at character {start + 1}")
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def _continuation(text: str, i: int) -> int | None:
    """After a closing quote at ``i - 1``: the index past the quote that
    continues the string (scan.l's {quotecontinue}), or None."""
    n, newline = len(text), False
    while i < n:
        c = text[i]
        if c in _NEWLINE:
            newline, i = True, i + 1
        elif c in _SPACE:
            i += 1
        elif text.startswith("--", i):
            i = _end_of_line(text, i)
        elif c == "'" and newline:
            return i + 1
        else:
            return None
    return None


def _skip_string(text: str, start: int, i: int, *, doubling: bool, backslash: bool) -> int:
    """Scan a quoted string whose content starts at ``i``; return the index past it."""
    n = len(text)
    while True:
        if i >= n:
            raise LexError(f"unterminated quoted string starting at character {start + 1}")
        c = text[i]
        if backslash and c == "\\":
            i += 2  # the escaped character, whatever it is (a quote too)
        elif c != "'":
            i += 1
        elif doubling and text.startswith("'", i + 1):
            i += 2
        else:
            after = _continuation(text, i + 1)
            if after is None:
                return i + 1
            i = after


def _skip_quoted_ident(text: str, start: int, i: int) -> tuple[int, str]:
    parts: list[str] = []
    while True:
        end = text.find('"', i)
        if end < 0:
            raise LexError(f"unterminated quoted identifier starting at character {start + 1}")
        parts.append(text[i:end])
        if text.startswith('"', end + 1):
            parts.append('"')
            i = end + 2
        else:
            if len(parts) == 1 and not parts[0]:
                raise LexError(f"zero-length quoted identifier at character {start + 1}")
            return end + 1, "".join(parts)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, dropping whitespace and comments.

    Raises:
        LexError: an unterminated string, quoted identifier, dollar quote or
            comment.
    """
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        start = i
        if c in _SPACE:
            i += 1
        elif c == "-" and nxt == "-":
            i = _end_of_line(text, i)
        elif c == "/" and nxt == "*":
            i = _skip_block_comment(text, i)
        elif c == "'":
            i = _skip_string(text, start, i + 1, doubling=True, backslash=False)
            out.append(Token("string", text[start:i], start))
        elif nxt == "'" and c in "eEbBxXnN":
            e_string = c in "eE"
            doubling = c not in "bBxX"
            i = _skip_string(text, start, i + 2, doubling=doubling, backslash=e_string)
            out.append(Token("string", text[start:i], start))
        elif c in "uU" and nxt == "&" and text[i + 2 : i + 3] in ("'", '"'):
            if text[i + 2] == "'":
                i = _skip_string(text, start, i + 3, doubling=True, backslash=False)
                out.append(Token("string", text[start:i], start))
            else:
                i, name = _skip_quoted_ident(text, start, i + 3)
                out.append(Token("uident", name, start))
        elif c == '"':
            i, name = _skip_quoted_ident(text, start, i + 1)
            out.append(Token("ident", name, start))
        elif c == "$" and nxt in _DIGITS:
            i += 1
            while i < n and text[i] in _DIGITS:
                i += 1
            out.append(Token("param", text[start + 1 : i], start))
        elif c == "$" and (m := _DOLLAR_DELIM.match(text, i)):
            end = text.find(m.group(), m.end())
            if end < 0:
                raise LexError(
                    f"unterminated dollar-quoted string starting at character {start + 1}"
                )
            i = end + len(m.group())
            out.append(Token("string", text[start:i], start))
        elif _ident_start(c):
            i += 1
            while i < n and _ident_cont(text[i]):
                i += 1
            out.append(Token("word", text[start:i].translate(_ASCII_LOWER), start))
        elif c in _DIGITS:
            while i < n and text[i] in _DIGITS:
                i += 1
            out.append(Token("number", text[start:i], start))
        else:
            # Operators one character at a time: a comment start inside an
            # operator run is then seen where PostgreSQL cuts the operator.
            i += 1
            out.append(Token("op", c, start))
    return out
