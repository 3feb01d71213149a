"""The run query language: the text of ``tympan runs --where``, ``GET /api/runs?where=`` and
the UI's filter box, read into :class:`Condition` values and written back.

One grammar for all three, so a filter copied from the UI's URL works on the command line::

    where   := clause (AND clause)*
    clause  := KEY OP VALUE                 test/wer.min < 0.1    lr >= 1e-3    encoder = gru
             | KEY [NOT] IN (VALUE, ...)    encoder in (conv, gru)
             | tags [NOT] HAS VALUE         tags has mfcc
             | VALUE                        a word or "quoted text": the name or id contains it
    OP      := =  ==  !=  <  <=  >  >=  ~ (contains)  !~ (does not contain)

Words need no quotes; a value with spaces or ``()<>=!~,`` in it is quoted ('...' or "...",
backslash escapes). Keywords (and, in, not, has) are any case. What a key names (a run field,
a config key, a metric summary) is decided against the store's keys when the query runs
(``tympan.records.resolve``), not here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tympan.errors import InvalidInputError

__all__ = ["Condition", "parse_where", "quoted"]

OPS = ("=", "!=", "<", "<=", ">", ">=", "~", "!~")
_TOKEN = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|==|!~|=|<|>|~)
  | (?P<punct>[(),])
  | (?P<word>[^\s"'()<>=!~,]+)
  | (?P<bad>\S))""", re.VERBOSE)
_PLAIN = re.compile(r"""[^\s"'()<>=!~,]+""")
_KEYWORDS = ("and", "in", "not", "has")


@dataclass(frozen=True)
class Condition:
    """One clause: ``key`` as written (``test/wer.min``, ``encoder``, ``config:lr``, ``tags``;
    ``text`` for a bare search word), ``op`` one of ``= != < <= > >= ~ !~ in``, ``not in``,
    ``has``, ``not has``, and its ``values`` as text (several for in / not in)."""

    key: str
    op: str
    values: tuple[str, ...]

    @property
    def value(self) -> str:
        return self.values[0]

    def __str__(self) -> str:
        if self.key == "text" and self.op == "~":
            return quoted(self.value)
        if self.op in ("in", "not in"):
            return f"{quoted(self.key)} {self.op} ({', '.join(quoted(v) for v in self.values)})"
        return f"{quoted(self.key)} {self.op} {quoted(self.value)}"


def quoted(text: str) -> str:
    """``text`` as the language reads it back: bare when it is one plain word."""
    if _PLAIN.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_where(text: str) -> list[Condition]:
    """The conditions of one ``where`` text (clauses joined by AND); a clear error naming
    the clause and what was expected when it does not read."""
    tokens = _tokens(text)
    clauses: list[list[tuple[str, str]]] = [[]]
    depth = 0
    for kind, value in tokens:
        if kind == "punct" and value in "()":
            depth += 1 if value == "(" else -1
        if kind == "word" and value.lower() == "and" and depth == 0:
            clauses.append([])
        else:
            clauses[-1].append((kind, value))
    return [_clause(clause, text) for clause in clauses if clause or len(clauses) > 1]


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind is None:
            continue
        value = match.group(kind)
        if kind == "bad":
            raise InvalidInputError(f"where {text!r}: unexpected {value!r}")
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif kind == "op" and value == "==":
            value = "="
        out.append((kind, value))
    return out


def _clause(tokens: list[tuple[str, str]], text: str) -> Condition:
    def fail(why: str) -> InvalidInputError:
        shown = " ".join(v for _, v in tokens) or "(nothing)"
        return InvalidInputError(
            f"where {text!r}: cannot read {shown!r}: {why} (write e.g. encoder = gru, "
            "test/wer.min < 0.1, lr >= 1e-3, encoder in (conv, gru), tags has mfcc; "
            "see docs/query.md)")

    if not tokens:
        raise fail("an empty clause around 'and'")
    (kind, key), rest = tokens[0], tokens[1:]
    if kind not in ("word", "str"):
        raise fail("a clause starts with a key or a search word")
    if not rest:
        return Condition("text", "~", (key,))
    words = [v.lower() if k == "word" else None for k, v in rest]
    if words[:1] == ["has"] or words[:2] == ["not", "has"]:
        op = "has" if words[0] == "has" else "not has"
        values = rest[1 if op == "has" else 2:]
        if key.lower() != "tags":
            raise fail(f"'{op}' tests tags: write tags {op} TAG")
        return Condition("tags", op, (_single(values, fail),))
    if words[:1] == ["in"] or words[:2] == ["not", "in"]:
        op = "in" if words[0] == "in" else "not in"
        return Condition(key, op, _listed(rest[1 if op == "in" else 2:], fail))
    op_kind, op = rest[0]
    if op_kind != "op":
        raise fail(f"expected an operator ({' '.join(OPS)}, in, has) after {key!r}")
    if key.lower() == "tags":
        raise fail("tags are tested with has: tags has TAG, tags not has TAG")
    return Condition(key, op, (_single(rest[1:], fail),))


def _single(tokens: list[tuple[str, str]], fail) -> str:  # type: ignore[no-untyped-def]
    """One value: a quoted string, or words (``note = first try`` reads 'first try')."""
    if not tokens:
        raise fail("a value is missing")
    if len(tokens) == 1 and tokens[0][0] in ("word", "str"):
        return tokens[0][1]
    if all(kind == "word" for kind, _ in tokens):
        return " ".join(value for _, value in tokens)
    raise fail("one value expected (quote values with spaces or symbols)")


def _listed(tokens: list[tuple[str, str]], fail) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    if len(tokens) < 2 or tokens[0] != ("punct", "(") or tokens[-1] != ("punct", ")"):
        raise fail("in takes a list in parentheses: KEY in (A, B)")
    values: list[str] = []
    current: list[tuple[str, str]] = []
    for token in [*tokens[1:-1], ("punct", ",")]:
        if token == ("punct", ","):
            values.append(_single(current, fail))
            current = []
        else:
            current.append(token)
    return tuple(values)
