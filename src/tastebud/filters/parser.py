"""Filter expression text -> syntax tree (:mod:`tastebud.filters.syntax`), by recursive descent.

The grammar (keywords, dataset names and ``ItemID``/``UserID`` in any case)::

    filter      := expression ( "|" expression )*
    expression  := ("INCLUDE" | "EXCLUDE") ("ItemID" | "UserID") "WHERE" predicate
                   [ "IF" condition ( "AND" condition )* ]        -- IF: CurrentUser fields only
    predicate   := conjunction ( "OR" conjunction )*
    conjunction := primary ( "AND" primary )*
    primary     := "(" predicate ")" | condition
    condition   := field operator operand
    field       := ("Items" | "Users" | "Interactions" | "CurrentUser" | "CurrentItem") "." NAME
    operator    := "IN" | "NOT" "IN" | "=" | "!=" | "<" | "<=" | ">" | ">="
    operand     := "(" value ( "," value )* ")" | value | current-field
    value       := "double" or 'single' quoted string (\\" and \\\\ escapes) | number
                   | ISO-8601 date/time (unquoted, e.g. 2024-01-31T12:00:00Z) | "$" NAME

Errors raise :class:`~tastebud.errors.FilterSyntaxError` naming the column (1-based) and what
was expected. Limits checked here: at most ``MAX_EXPRESSION_LENGTH`` characters and
``MAX_PARAMETERS`` distinct parameters of at most ``MAX_PARAMETER_NAME`` characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NoReturn

from tastebud.errors import FilterSyntaxError, InvalidInput
from tastebud.filters.syntax import (
    And,
    Condition,
    Dataset,
    Expression,
    Field,
    Filter,
    Number,
    Operator,
    Or,
    Param,
    Predicate,
    String,
    Timestamp,
    Value,
    parameters,
)
from tastebud.schema import parse_timestamp

MAX_EXPRESSION_LENGTH = 2500  # CreateFilter's filterExpression limit in the reference
MAX_PARAMETERS = 25  # the reference's filterValues map holds at most 25 entries
MAX_PARAMETER_NAME = 50

TokenKind = Literal["word", "string", "number", "timestamp", "param", "symbol", "end"]

_DATASETS: dict[str, Dataset] = {
    "ITEMS": "Items",
    "USERS": "Users",
    "INTERACTIONS": "Interactions",
    "CURRENTUSER": "CurrentUser",
    "CURRENTITEM": "CurrentItem",
}
_SYMBOL_OPERATORS: dict[str, Operator] = {
    "=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
}  # fmt: skip
_PATTERNS = (
    ("timestamp", r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"
                  r"(?:Z|[+-]\d{2}:?\d{2})?(?![\w.:-])"),
    ("number", r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.])"),
    ("word", r"[A-Za-z_][A-Za-z0-9_]*"),
    ("param", r"\$[A-Za-z0-9_]*"),
    ("symbol", r"<=|>=|!=|[=<>(),.|]"),
)  # fmt: skip
_TOKEN = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in _PATTERNS))
_SPACE = re.compile(r"\s*")


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str  # as written (a string's decoded value)
    column: int  # 1-based


def parse(text: str) -> Filter:
    """Parse a filter expression.

    Raises:
        FilterSyntaxError: the text does not follow the grammar (the message names the column
            and what was expected there).
        InvalidInput: a limit is exceeded (length, number of parameters).
    """
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise InvalidInput(
            f"filter expression: {len(text)} characters, at most {MAX_EXPRESSION_LENGTH}"
        )
    tree = _Parser(tokenize(text)).filter()
    used = parameters(tree)
    if len(used) > MAX_PARAMETERS:
        raise InvalidInput(
            f"filter expression: {len(used)} parameters "
            f"({', '.join('$' + p for p in used)}), at most {MAX_PARAMETERS}"
        )
    return tree


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with one ``end`` token."""
    tokens: list[Token] = []
    position = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    while position < len(text):
        if text[position] in "\"'":
            token, position = _string(text, position)
        else:
            match = _TOKEN.match(text, position)
            if match is None or match.lastgroup is None:
                _fail(position + 1, "a keyword, field, value or operator", repr(text[position]))
            token = Token(match.lastgroup, match.group(), position + 1)  # type: ignore[arg-type]
            if token.kind == "param":
                _check_param(token)
            position = match.end()
        tokens.append(token)
        position = _SPACE.match(text, position).end()  # type: ignore[union-attr]
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def _string(text: str, start: int) -> tuple[Token, int]:
    quote, position = text[start], start + 1
    chars: list[str] = []
    while position < len(text):
        char = text[position]
        if char == quote:
            return Token("string", "".join(chars), start + 1), position + 1
        if char == "\\" and position + 1 < len(text):
            position += 1
            char = text[position]
        chars.append(char)
        position += 1
    raise FilterSyntaxError(
        f"filter expression, column {start + 1}: unbalanced quotes: the string opened here "
        f"has no closing {quote}"
    )


def _check_param(token: Token) -> None:
    name = token.text[1:]
    if not name:
        _fail(token.column, "a parameter name after $ (letters, digits, _)", "'$'")
    if len(name) > MAX_PARAMETER_NAME:
        raise FilterSyntaxError(
            f"filter expression, column {token.column}: parameter ${name[:20]}… is longer than "
            f"{MAX_PARAMETER_NAME} characters"
        )


def _fail(column: int, expected: str, got: str) -> NoReturn:
    raise FilterSyntaxError(f"filter expression, column {column}: expected {expected}, got {got}")


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "the end of the expression"
    if token.kind == "string":
        return f"the string {token.text!r}"
    return repr(token.text)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._at = 0

    # token helpers ----------------------------------------------------------------------------
    @property
    def _token(self) -> Token:
        return self._tokens[self._at]

    def _next(self) -> Token:
        token = self._tokens[self._at]
        self._at = min(self._at + 1, len(self._tokens) - 1)
        return token

    def _is(self, *words: str) -> bool:
        token = self._token
        if token.kind == "word":
            return token.text.upper() in words
        return token.kind == "symbol" and token.text in words

    def _expect(self, word: str, expected: str | None = None) -> Token:
        if not self._is(word):
            self._error(expected or word)
        return self._next()

    def _error(self, expected: str) -> NoReturn:
        _fail(self._token.column, expected, _describe(self._token))

    # grammar ----------------------------------------------------------------------------------
    def filter(self) -> Filter:
        expressions = [self._expression()]
        while self._is("|"):
            self._next()
            expressions.append(self._expression())
        if self._token.kind != "end":
            self._error("'|' or the end of the expression")
        return Filter(tuple(expressions))

    def _expression(self) -> Expression:
        if not self._is("INCLUDE", "EXCLUDE"):
            self._error("INCLUDE or EXCLUDE")
        action = "INCLUDE" if self._next().text.upper() == "INCLUDE" else "EXCLUDE"
        if not self._is("ITEMID", "USERID"):
            self._error("ItemID or UserID")
        target = "ItemID" if self._next().text.upper() == "ITEMID" else "UserID"
        self._expect("WHERE")
        where = self._predicate()
        when: list[Condition] = []
        if self._is("IF"):
            self._next()
            when.append(self._if_condition())
            while self._is("AND"):
                self._next()
                when.append(self._if_condition())
        if not (self._is("|") or self._token.kind == "end"):
            self._error("AND, OR, IF, '|' or the end of the expression")
        return Expression(action, target, where, tuple(when))  # type: ignore[arg-type]

    def _predicate(self) -> Predicate:
        terms = [self._conjunction()]
        while self._is("OR"):
            self._next()
            terms.append(self._conjunction())
        return _joined(Or, terms)

    def _conjunction(self) -> Predicate:
        terms = [self._primary()]
        while self._is("AND"):
            self._next()
            terms.append(self._primary())
        return _joined(And, terms)

    def _primary(self) -> Predicate:
        if self._is("("):
            self._next()
            inner = self._predicate()
            self._expect(")", "')' to close the group")
            return inner
        return self._condition()

    def _if_condition(self) -> Condition:
        column = self._token.column
        condition = self._condition()
        if condition.field.dataset != "CurrentUser":
            _fail(column, "a CurrentUser field (IF checks the current user)",
                  repr(f"{condition.field.dataset}.{condition.field.name}"))  # fmt: skip
        return condition

    def _condition(self) -> Condition:
        field = self._field("a field such as Items.GENRES, or '('")
        operator = self._operator()
        return Condition(field, operator, self._operand())

    def _field(self, expected: str) -> Field:
        token = self._token
        if token.kind != "word":
            self._error(expected)
        dataset = _DATASETS.get(token.text.upper())
        if dataset is None:
            raise FilterSyntaxError(
                f"filter expression, column {token.column}: unknown dataset {token.text!r}; "
                "expected Items, Users, Interactions, CurrentUser or CurrentItem"
            )
        self._next()
        self._expect(".", f"'.' and a field name after {dataset}")
        if self._token.kind != "word":
            self._error(f"a field name after {dataset}.")
        return Field(dataset, self._next().text)

    def _operator(self) -> Operator:
        token = self._token
        if token.kind == "symbol" and token.text in _SYMBOL_OPERATORS:
            self._next()
            return _SYMBOL_OPERATORS[token.text]
        if self._is("IN"):
            self._next()
            return "IN"
        if self._is("NOT"):
            self._next()
            self._expect("IN", "IN after NOT")
            return "NOT IN"
        self._error("an operator: IN, NOT IN, =, !=, <, <=, > or >=")

    def _operand(self) -> tuple[Value, ...] | Field:
        if self._is("("):
            self._next()
            values = [self._value()]
            while self._is(","):
                self._next()
                values.append(self._value())
            self._expect(")", "',' or ')' to close the value list")
            return tuple(values)
        if self._token.kind == "word":
            column = self._token.column
            field = self._field("a value")
            if field.dataset not in ("CurrentItem", "CurrentUser"):
                _fail(column, "a value, a $PARAMETER, or a CurrentItem. or CurrentUser. field",
                      repr(f"{field.dataset}.{field.name}"))  # fmt: skip
            return field
        return (self._value(),)

    def _value(self) -> Value:
        token = self._token
        value: Value
        if token.kind == "string":
            value = String(token.text)
        elif token.kind == "param":
            value = Param(token.text[1:])
        elif token.kind == "number":
            exact = not any(c in token.text for c in ".eE")
            value = Number(int(token.text) if exact else float(token.text))
        elif token.kind == "timestamp":
            value = Timestamp(_timestamp(token))
        else:
            self._error('a value: "text", a number, a date, or a $PARAMETER')
        self._next()
        return value


def _joined(kind: type[And] | type[Or], terms: list[Predicate]) -> Predicate:
    if len(terms) == 1:
        return terms[0]
    flat: list[Predicate] = []
    for term in terms:  # "(a OR b) OR c" is the same tree as "a OR b OR c"
        flat.extend(term.terms if isinstance(term, kind) else (term,))
    return kind(tuple(flat))


def _timestamp(token: Token) -> int:
    try:
        return parse_timestamp(token.text, "timestamp")
    except InvalidInput:
        raise FilterSyntaxError(
            f"filter expression, column {token.column}: {token.text!r} is not a valid date or "
            "time (ISO-8601, 1970-2100)"
        ) from None
