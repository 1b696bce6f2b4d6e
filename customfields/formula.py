"""Formula fields: a small, safe expression language over the other fields of a record.

An admin writes `annual_volume * unit_price` or `IF(annual_volume >= 1000, "重点", "普通")`. The
formula is checked when the definition is saved (syntax, field names, types), so saving a record
never meets a formula error: at evaluation, data problems (a blank input, a division by zero, an
impossible date) give a blank value instead.

There is no eval(): a tokenizer, a precedence-climbing parser building a small tree of nodes, a
static type checker over that tree and an evaluator, with limits on length, nesting and numbers.
"""

from __future__ import annotations

import calendar
import datetime as dt
import difflib
import logging
import operator
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Any

from flask_babel import gettext as babel_gettext

logger = logging.getLogger(__name__)


def _(message: str, **variables: Any) -> str:
    """flask_babel's gettext, or the plain message where Babel is not set up: it raises KeyError
    in the context of an app without Babel (a script, a worker), and formulas compile there too."""
    try:
        return babel_gettext(message, **variables)
    except (KeyError, RuntimeError, AttributeError):
        return message % variables if variables else message

#: the types a formula computes with (and a field offers to formulas)
RESULT_TYPES = ("number", "text", "date", "datetime", "boolean")
#: the type of the BLANK literal: fits anywhere, but a formula must not be only that
BLANK = "blank"
MAX_LENGTH = 2000
MAX_DEPTH = 50
#: `^` takes whole exponents up to this size: 10 ^ 100 is already far beyond any CRM figure
MAX_EXPONENT = 100
#: a number result at least this large is blank: the caller quantizes to 4 places in 28 digits
MAX_NUMBER = Decimal("1E20")
#: exact decimal arithmetic, 28 digits; overflow and invalid operations raise (then: blank)
DECIMAL_CONTEXT = Context(
    prec=28,
    rounding=ROUND_HALF_EVEN,
    Emin=-999999,
    Emax=999999,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
#: what bad data raises while evaluating (decimal signals and OverflowError are ArithmeticErrors)
DATA_ERRORS = (ArithmeticError, ValueError)
#: booleans stored as text (imports, old values), as the boolean field type reads them
TRUE_TEXTS = {"1", "true", "yes", "y", "on", "是", "对"}
FALSE_TEXTS = {"0", "false", "no", "n", "off", "否", "不"}


class FormulaError(ValueError):
    """A problem in a formula, worded for the admin who wrote it (the message says where)."""

    position: int | None  # 1-based character position of the problem, if known

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        self.detail = message
        if position is not None:
            message = _("第 %(pos)s 个字符: %(msg)s", pos=position, msg=message)
        super().__init__(message)


def type_label(kind: str) -> str:
    """A formula type as the admin knows it (in messages)."""
    labels = {
        "number": _("数字"),
        "text": _("文本"),
        "date": _("日期"),
        "datetime": _("日期时间"),
        "boolean": _("是/否"),
        BLANK: _("空值"),
    }
    return labels.get(kind, kind)


# --- tokens: full-width punctuation and digits become ASCII outside string literals --------------
@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "number", "string", "name", "op" or "end"
    text: str  # as written, normalised (a string literal: its value)
    pos: int  # 1-based position in the source


#: opening quote -> the quotes that close it (IMEs mix up “ and ”, so either closes)
QUOTES = {
    '"': '"＂', "＂": '"＂', "'": "'＇", "＇": "'＇",
    "“": "”“", "”": "”“", "‘": "’‘", "’": "’‘",
}  # fmt: skip
#: symbols NFKC leaves alone but Chinese input methods produce
SYMBOLS = {"×": "*", "÷": "/", "≠": "!=", "≤": "<=", "≥": ">="}
TOKEN = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\|\||&&|==|!=|<>|<=|>=|[<>=!&+\-*/%^(),])"
)


def tokenize(source: str) -> list[Token]:
    """The tokens of `source`, ending with an "end" token."""
    tokens: list[Token] = []
    i = 0
    while i < len(source):
        if source[i] in QUOTES:
            token, i = read_string(source, i)
            tokens.append(token)
            continue
        j = i
        while j < len(source) and source[j] not in QUOTES:
            j += 1
        tokens.extend(tokenize_plain(source, i, j))
        i = j
    tokens.append(Token("end", "", len(source) + 1))
    return tokens


def read_string(source: str, start: int) -> tuple[Token, int]:
    """The string literal opening at `start`, and where the source goes on after it."""
    closers = QUOTES[source[start]]
    chars: list[str] = []
    i = start + 1
    while i < len(source):
        char = source[i]
        if char == "\\" and i + 1 < len(source) and (source[i + 1] in QUOTES or source[i + 1] == "\\"):
            chars.append(source[i + 1])  # \" \' \\ (any other backslash stays, e.g. C:\temp)
            i += 2
            continue
        if char in closers:
            return Token("string", "".join(chars), start + 1), i + 1
        chars.append(char)
        i += 1
    raise FormulaError(_("字符串缺少结束引号"), start + 1)


def tokenize_plain(source: str, start: int, end: int) -> list[Token]:
    """Tokens of source[start:end], which holds no string: NFKC-normalised char by char, so that
    every normalised char still knows its position in the source."""
    pieces: list[str] = []
    where: list[int] = []
    for index in range(start, end):
        normal = "".join(SYMBOLS.get(c, c) for c in unicodedata.normalize("NFKC", source[index]))
        pieces.append(normal)
        where.extend([index + 1] * len(normal))
    text = "".join(pieces)
    tokens = []
    j = 0
    while j < len(text):
        if text[j].isspace():
            j += 1
            continue
        match = TOKEN.match(text, j)
        if match is None:
            raise FormulaError(_("无法识别的字符 %(char)s", char=source[where[j] - 1]), where[j])
        tokens.append(Token(match.lastgroup or "op", match.group(), where[j]))
        j = match.end()
    return tokens


# --- the tree ------------------------------------------------------------------------------------
@dataclass(eq=False)
class Node:
    """A node of a formula's tree; the type checker sets `kind` (its formula type)."""

    pos: int  # where the node starts in the source (1-based)
    kind: str = field(default="", init=False)
    depth: int = field(default=1, init=False)

    def __post_init__(self) -> None:
        self.depth = 1 + max((child.depth for child in self.children()), default=0)

    def children(self) -> list[Node]:
        return []

    def evaluate(self, env: Env) -> Any:
        raise NotImplementedError


@dataclass(eq=False)
class Literal(Node):
    value: Any
    literal_kind: str

    def evaluate(self, env: Env) -> Any:
        return self.value


@dataclass(eq=False)
class Name(Node):
    name: str

    def evaluate(self, env: Env) -> Any:
        return coerce(env.values.get(self.name), self.kind)


@dataclass(eq=False)
class Unary(Node):
    op: str  # "-", "+" or "NOT"
    operand: Node

    def children(self) -> list[Node]:
        return [self.operand]

    def evaluate(self, env: Env) -> Any:
        value = self.operand.evaluate(env)
        if self.op == "NOT":
            return value is not True
        return None if value is None else (-value if self.op == "-" else value)


@dataclass(eq=False)
class Power(Node):
    """`^`, the one right-associative operator."""

    op_pos: int
    base: Node
    exponent: Node

    def children(self) -> list[Node]:
        return [self.base, self.exponent]

    def evaluate(self, env: Env) -> Any:
        base, exponent = self.base.evaluate(env), self.exponent.evaluate(env)
        if base is None or exponent is None:
            return None
        if exponent != exponent.to_integral_value() or abs(exponent) > MAX_EXPONENT:
            return None
        try:
            return base ** int(exponent)
        except DATA_ERRORS:
            return None


@dataclass(eq=False)
class Chain(Node):
    """Left-associative operators of one precedence level, `a + b - c`, kept flat: a long chain
    does not make a deep tree (nor deep recursion when checked or evaluated)."""

    level: int
    first: Node
    steps: list[tuple[str, int, Node]]  # (operator, its position, right operand)

    def children(self) -> list[Node]:
        return [self.first, *(operand for _op, _pos, operand in self.steps)]

    def append(self, op: str, pos: int, operand: Node) -> None:
        self.steps.append((op, pos, operand))
        self.depth = max(self.depth, 1 + operand.depth)

    def evaluate(self, env: Env) -> Any:
        if self.level <= PRECEDENCE["AND"]:  # AND / OR: blank is false, stop when the answer is known
            value = self.first.evaluate(env) is True
            for op, _pos, operand in self.steps:
                if value == (op == "OR"):
                    break
                value = operand.evaluate(env) is True
            return value
        value = self.first.evaluate(env)
        left_is_blank = is_blank_literal(self.first)
        for op, _pos, operand in self.steps:
            right = operand.evaluate(env)
            if op in ("=", "!=") and (left_is_blank or is_blank_literal(operand)):
                value = is_blank(right if left_is_blank else value) == (op == "=")  # x = BLANK
            else:
                try:
                    value = apply_operator(op, value, right)
                except DATA_ERRORS:
                    value = None
            left_is_blank = False
        return value


@dataclass(eq=False)
class Call(Node):
    name: str  # upper case
    args: list[Node]
    function: Function | None = field(default=None, init=False, repr=False)

    def children(self) -> list[Node]:
        return list(self.args)

    def evaluate(self, env: Env) -> Any:
        function = self.function
        assert function is not None, "evaluated before type checking"
        try:
            if function.lazy:
                return function.run(env, self.args)
            values = [arg.evaluate(env) for arg in self.args]
            if function.blank_in_blank_out and any(value is None for value in values):
                return None
            return function.run(*values)
        except DATA_ERRORS:
            return None


def is_blank_literal(node: Node) -> bool:
    return isinstance(node, Literal) and node.literal_kind == BLANK


# --- parser: precedence climbing -----------------------------------------------------------------
PRECEDENCE = {
    "OR": 1, "AND": 2, "=": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
    "&": 5, "+": 6, "-": 6, "*": 7, "/": 7, "%": 7, "^": 9,
}  # fmt: skip
NOT_PRECEDENCE = 3  # NOT a = b is NOT (a = b)
UNARY_PRECEDENCE = 8  # -2 ^ 2 is -(2 ^ 2)
SPELLINGS = {"||": "OR", "&&": "AND", "==": "=", "<>": "!="}


class Parser:
    """Builds the tree of a token list; raises FormulaError at the first syntax problem."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.nesting = 0  # expression() calls in progress: bounds the recursion, whatever the input
        self.brackets: list[tuple[int, bool]] = []  # open brackets: (position, is a function call)

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def peek(self) -> Token:
        return self.tokens[min(self.index + 1, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.token
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def at(self, text: str) -> bool:
        return self.token.kind == "op" and self.token.text == text

    def parse(self) -> Node:
        if self.at("="):  # spreadsheet habit: =a+b
            self.advance()
        node = self.expression(0)
        if self.token.kind != "end":
            raise self.unexpected(self.token)
        return node

    def expression(self, min_precedence: int) -> Node:
        self.nesting += 1
        if self.nesting > 2 * MAX_DEPTH:
            raise FormulaError(_("公式嵌套不能超过 %(n)s 层", n=MAX_DEPTH), self.token.pos)
        try:
            left = self.prefix()
            while True:
                op_token = self.token
                op = self.binary_operator(op_token)
                if op is None or PRECEDENCE[op] < min_precedence:
                    return left
                self.advance()
                precedence = PRECEDENCE[op]
                right = self.expression(precedence if op == "^" else precedence + 1)
                left = self.combine(op, op_token.pos, left, right)
        finally:
            self.nesting -= 1

    def binary_operator(self, token: Token) -> str | None:
        if token.kind == "op":
            op = SPELLINGS.get(token.text, token.text)
            return op if op in PRECEDENCE else None
        if token.kind == "name" and token.text.upper() in ("AND", "OR"):
            return token.text.upper()
        return None

    def combine(self, op: str, pos: int, left: Node, right: Node) -> Node:
        node: Node
        if op == "^":
            node = Power(left.pos, pos, left, right)
        elif isinstance(left, Chain) and left.level == PRECEDENCE[op]:
            left.append(op, pos, right)  # (a - b) - c is a - b - c: the same left fold
            node = left
        else:
            node = Chain(left.pos, PRECEDENCE[op], left, [(op, pos, right)])
        return self.made(node)

    def made(self, node: Node) -> Node:
        if node.depth > MAX_DEPTH:
            raise FormulaError(_("公式嵌套不能超过 %(n)s 层", n=MAX_DEPTH), node.pos)
        return node

    def prefix(self) -> Node:
        token = self.token
        if token.kind == "op" and token.text in ("-", "+"):
            self.advance()
            return self.made(Unary(token.pos, token.text, self.expression(UNARY_PRECEDENCE + 1)))
        after = self.peek()
        is_call = after.kind == "op" and after.text == "("
        is_not_word = token.kind == "name" and token.text.upper() == "NOT" and not is_call
        if is_not_word or (token.kind == "op" and token.text == "!"):
            self.advance()
            return self.made(Unary(token.pos, "NOT", self.expression(NOT_PRECEDENCE + 1)))
        return self.primary()

    def primary(self) -> Node:
        token = self.advance()
        if token.kind == "number":
            return Literal(token.pos, Decimal(token.text), "number")
        if token.kind == "string":
            return Literal(token.pos, token.text, "text")
        if token.kind == "op" and token.text == "(":
            self.brackets.append((token.pos, False))
            node = self.expression(0)
            self.close(token)
            self.brackets.pop()
            return node
        if token.kind == "name":
            word = token.text.upper()
            if self.at("("):  # NOT(x), AND(a, b): the function forms
                return self.call(token)
            if word in ("TRUE", "FALSE"):
                return Literal(token.pos, word == "TRUE", "boolean")
            if word in ("BLANK", "NULL"):
                return Literal(token.pos, None, BLANK)
            if word not in ("AND", "OR", "NOT"):
                return Name(token.pos, token.text)
        raise self.unexpected(token)

    def call(self, name: Token) -> Node:
        opening = self.advance()
        self.brackets.append((opening.pos, True))
        args: list[Node] = []
        if self.at(")"):
            self.advance()
        else:
            while True:
                args.append(self.expression(0))
                if self.at(","):
                    self.advance()
                    continue
                self.close(opening)
                break
        self.brackets.pop()
        return self.made(Call(name.pos, name.text.upper(), args))

    def close(self, opening: Token) -> None:
        """Consume the `)` matching `opening`."""
        if not self.at(")"):
            if self.token.kind == "end":
                raise FormulaError(_("括号没有闭合"), opening.pos)
            if self.brackets[-1][1]:
                message = _("此处应为逗号或右括号,而不是 %(token)s", token=show(self.token))
            else:
                message = _("此处应为右括号,而不是 %(token)s", token=show(self.token))
            raise FormulaError(message, self.token.pos)
        self.advance()

    def unexpected(self, token: Token) -> FormulaError:
        if token.kind == "end":
            if self.brackets:
                return FormulaError(_("括号没有闭合"), self.brackets[-1][0])
            return FormulaError(_("公式不完整"), token.pos)
        index = self.tokens.index(token)
        after_separator = index > 0 and self.tokens[index - 1].text in ("(", ",")
        in_call = bool(self.brackets) and self.brackets[-1][1]
        if token.kind == "op" and token.text in (",", ")") and in_call and after_separator:
            return FormulaError(_("缺少参数"), token.pos)  # IF(a,,b) IF(a,) ROUND(,2)
        if token.kind == "op" and token.text == ")" and not self.brackets:
            return FormulaError(_("多余的右括号"), token.pos)
        return FormulaError(_("此处不应出现 %(token)s", token=show(token)), token.pos)


def show(token: Token) -> str:
    """A token as quoted in a message."""
    if token.kind == "string":
        text = token.text if len(token.text) <= 20 else token.text[:20] + "…"
        return f'"{text}"'
    return token.text


# --- functions -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Function:
    """A built-in function: argument types for the checker, a Python function for the evaluator."""

    params: tuple[str, ...]  # accepted types of each argument: "number", "date|datetime"; "*": any
    run: Callable[..., Any]
    #: the result type, or a function of the argument types (and the call, for messages)
    result: str | Callable[[list[str], Call], str]
    optional: int = 0  # how many trailing params may be left out
    repeat: bool = False  # the last param repeats: any number of arguments from len(params)
    lazy: bool = False  # run(env, argument nodes): IF and AND evaluate only what they need
    blank_in_blank_out: bool = True  # a blank argument gives a blank result (without calling run)

    def arity_text(self) -> str:
        low, high = len(self.params) - self.optional, len(self.params)
        if self.repeat:
            return _("至少 %(n)s", n=low)
        return str(low) if low == high else _("%(low)s 到 %(high)s", low=low, high=high)

    def accepts(self, count: int) -> bool:
        low = len(self.params) - self.optional
        return low <= count and (self.repeat or count <= len(self.params))

    def param(self, index: int) -> str:
        return self.params[min(index, len(self.params) - 1)]


def same_type(start: int) -> Callable[[list[str], Call], str]:
    """Result type rule: the arguments from `start` on share one type (BLANK fits any)."""

    def rule(kinds: list[str], call: Call) -> str:
        result = BLANK
        for kind, arg in zip(kinds[start:], call.args[start:], strict=True):
            if kind == BLANK or kind == result:
                continue
            if result != BLANK:
                raise FormulaError(
                    _("函数 %(name)s 的参数类型应一致,不能同时有%(a)s和%(b)s",
                      name=call.name, a=type_label(result), b=type_label(kind)),
                    arg.pos,
                )  # fmt: skip
            result = kind
        return result

    return rule


def first_type(kinds: list[str], call: Call) -> str:
    return kinds[0]


def text_result(kinds: list[str], call: Call) -> str:
    """TEXT(x, decimals): decimals only make sense for a number."""
    if len(kinds) == 2 and kinds[0] not in ("number", BLANK):
        raise FormulaError(
            _("函数 %(name)s 只有数字才能指定小数位数", name=call.name), call.args[1].pos
        )
    return "text"


def whole(number: Decimal, limit: int) -> int:
    """A whole number (truncated toward zero) within ±limit, else ValueError (then: blank)."""
    if not number.is_finite() or abs(number) > limit:
        raise ValueError(number)
    return int(number)


def fn_if(env: Env, args: list[Node]) -> Any:
    if args[0].evaluate(env) is True:
        return args[1].evaluate(env)
    return args[2].evaluate(env) if len(args) > 2 else None


def fn_coalesce(env: Env, args: list[Node]) -> Any:
    for arg in args:
        value = arg.evaluate(env)
        if not is_blank(value):
            return value
    return None


def fn_round(number: Decimal, digits: Decimal = Decimal(0)) -> Decimal:
    places = whole(digits, 20)
    if places >= 0:
        return number.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    factor = Decimal(10) ** -places  # ROUND(1234, -2) = 1200, written without exponent
    return (number / factor).quantize(Decimal(1), ROUND_HALF_UP) * factor


def fn_left(text: str | None, count: Decimal | None = Decimal(1)) -> str | None:
    if count is None:
        return None
    n = whole(count, 10**6)
    return None if n < 0 else as_str(text)[:n]


def fn_right(text: str | None, count: Decimal | None = Decimal(1)) -> str | None:
    if count is None:
        return None
    n, text = whole(count, 10**6), as_str(text)
    if n < 0:
        return None
    return text[max(len(text) - n, 0) :] if n else ""


def fn_text(value: Any, decimals: Decimal | None = None) -> str:
    if decimals is not None and isinstance(value, Decimal):
        value = fn_round(value, decimals)
    return as_text(value)


def fn_date(year: Decimal, month: Decimal, day: Decimal) -> dt.date:
    return dt.date(whole(year, 9999), whole(month, 12), whole(day, 31))


def fn_days(end: dt.date, start: dt.date) -> Decimal:
    return Decimal((as_date(end) - as_date(start)).days)


def fn_add_months(value: dt.date, months: Decimal) -> dt.date:
    """Same day n months later, or that month's last day (31 January + 1 month = 28/29 February)."""
    total = value.year * 12 + value.month - 1 + whole(months, 120_000)
    year, month = divmod(total, 12)
    last_day = calendar.monthrange(year, month + 1)[1] if 1 <= year <= 9999 else 0
    return value.replace(year=year, month=month + 1, day=min(value.day, last_day))


def fn_datevalue(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return as_date(value)
    return parse_date(str(value))


def fn_min_max(pick: Callable[..., Any]) -> Callable[..., Any]:
    def run(*values: Any) -> Any:
        present = [value for value in values if value is not None]  # blanks are left out
        return pick(present) if present else None

    return run


def fn_trim(text: str | None) -> str:
    return re.sub(r"\s+", " ", as_str(text)).strip()


DATES = "date|datetime"
FUNCTIONS: dict[str, Function] = {
    "IF": Function(("boolean", "*", "*"), fn_if, same_type(1), optional=1, lazy=True),
    "AND": Function(("boolean",), lambda env, args: all(a.evaluate(env) is True for a in args),
                    "boolean", repeat=True, lazy=True),
    "OR": Function(("boolean",), lambda env, args: any(a.evaluate(env) is True for a in args),
                   "boolean", repeat=True, lazy=True),
    "NOT": Function(("boolean",), lambda value: value is not True, "boolean", blank_in_blank_out=False),
    "ISBLANK": Function(("*",), lambda value: is_blank(value), "boolean", blank_in_blank_out=False),
    "COALESCE": Function(("*",), fn_coalesce, same_type(0), repeat=True, lazy=True),
    "ROUND": Function(("number", "number"), fn_round, "number", optional=1),
    "FLOOR": Function(("number",), lambda x: x.to_integral_value(ROUND_FLOOR), "number"),
    "CEIL": Function(("number",), lambda x: x.to_integral_value(ROUND_CEILING), "number"),
    "ABS": Function(("number",), abs, "number"),
    "MIN": Function(("number|date|datetime",), fn_min_max(min), same_type(0), repeat=True,
                    blank_in_blank_out=False),
    "MAX": Function(("number|date|datetime",), fn_min_max(max), same_type(0), repeat=True,
                    blank_in_blank_out=False),
    "SUM": Function(("number",), lambda *xs: sum((x for x in xs if x is not None), Decimal(0)),
                    "number", repeat=True, blank_in_blank_out=False),
    "CONCAT": Function(("*",), lambda *values: "".join(as_text(v) for v in values), "text", repeat=True,
                       blank_in_blank_out=False),
    "LEN": Function(("text",), lambda s: Decimal(len(as_str(s))), "number", blank_in_blank_out=False),
    "UPPER": Function(("text",), lambda s: as_str(s).upper(), "text", blank_in_blank_out=False),
    "LOWER": Function(("text",), lambda s: as_str(s).lower(), "text", blank_in_blank_out=False),
    "TRIM": Function(("text",), fn_trim, "text", blank_in_blank_out=False),
    "LEFT": Function(("text", "number"), fn_left, "text", optional=1, blank_in_blank_out=False),
    "RIGHT": Function(("text", "number"), fn_right, "text", optional=1, blank_in_blank_out=False),
    "CONTAINS": Function(("text", "text"), lambda s, part: as_str(part) in as_str(s), "boolean",
                         blank_in_blank_out=False),
    "TEXT": Function(("*", "number"), fn_text, text_result, optional=1, blank_in_blank_out=False),
    "TODAY": Function((), lambda env, args: env.now.date(), "date", lazy=True),
    "NOW": Function((), lambda env, args: env.now, "datetime", lazy=True),
    "DATE": Function(("number", "number", "number"), fn_date, "date"),
    "YEAR": Function((DATES,), lambda d: Decimal(d.year), "number"),
    "MONTH": Function((DATES,), lambda d: Decimal(d.month), "number"),
    "DAY": Function((DATES,), lambda d: Decimal(d.day), "number"),
    "DAYS": Function((DATES, DATES), fn_days, "number"),
    "ADD_DAYS": Function((DATES, "number"), lambda d, n: add_days(d, n), first_type),
    "ADD_MONTHS": Function((DATES, "number"), fn_add_months, first_type),
    "DATEVALUE": Function(("text|date|datetime",), fn_datevalue, "date"),
}  # fmt: skip
TIME_FUNCTIONS = {"TODAY", "NOW"}


# --- type checker --------------------------------------------------------------------------------
#: arithmetic operators: (left type, right type) -> result type
ARITHMETIC: dict[str, dict[tuple[str, str], str]] = {
    "+": {
        ("number", "number"): "number",
        ("date", "number"): "date",
        ("number", "date"): "date",
        ("datetime", "number"): "datetime",
        ("number", "datetime"): "datetime",
    },
    "-": {
        ("number", "number"): "number",
        ("date", "number"): "date",
        ("datetime", "number"): "datetime",
        ("date", "date"): "number",
        ("datetime", "datetime"): "number",
        ("date", "datetime"): "number",
        ("datetime", "date"): "number",
    },
    **{op: {("number", "number"): "number"} for op in ("*", "/", "%", "^")},
}
COMPARISONS = {"=", "!=", "<", "<=", ">", ">="}


def binary_type(op: str, left: str, right: str) -> str | None:
    """The type of `left op right`, None if the operator does not apply to those types."""
    if op == "&":
        return "text"
    if op in ("AND", "OR"):
        return "boolean" if {left, right} <= {"boolean", BLANK} else None
    if op in COMPARISONS:
        if BLANK in (left, right) or (left == right and (left != "boolean" or op in ("=", "!="))):
            return "boolean"
        return "boolean" if {left, right} == {"date", "datetime"} else None
    table = ARITHMETIC[op]
    if left == BLANK and right == BLANK:
        return BLANK
    if BLANK in (left, right):  # BLANK stands for whichever type makes sense: a number, else the other's
        other = right if left == BLANK else left
        for guess in ("number", other):
            result = table.get((guess, other) if left == BLANK else (other, guess))
            if result:
                return result
        return None
    return table.get((left, right))


class Checker:
    """Sets each node's type; raises FormulaError for unknown names and type mismatches."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names
        self.inputs: set[str] = set()
        self.uses_today = False

    def check(self, node: Node) -> str:
        node.kind = self.type_of(node)
        return node.kind

    def type_of(self, node: Node) -> str:
        match node:
            case Literal():
                return node.literal_kind
            case Name():
                return self.name_type(node)
            case Unary():
                kind = self.check(node.operand)
                if node.op == "NOT":
                    if kind not in ("boolean", BLANK):
                        raise FormulaError(_("不能对%(type)s使用 %(op)s", type=type_label(kind), op="NOT"),
                                           node.pos)  # fmt: skip
                    return "boolean"
                if kind not in ("number", BLANK):
                    raise FormulaError(_("不能对%(type)s使用 %(op)s", type=type_label(kind), op=node.op),
                                       node.pos)  # fmt: skip
                return kind
            case Power():
                kind = self.operation("^", node.op_pos, self.check(node.base), self.check(node.exponent))
                self.check_exponent(node.exponent)
                return kind
            case Chain():
                kind = self.check(node.first)
                for op, pos, operand in node.steps:
                    kind = self.operation(op, pos, kind, self.check(operand))
                return kind
            case Call():
                return self.call_type(node)
        raise TypeError(node)

    def operation(self, op: str, pos: int, left: str, right: str) -> str:
        result = binary_type(op, left, right)
        if result is None:
            raise FormulaError(
                _("不能对%(left)s和%(right)s使用 %(op)s",
                  left=type_label(left), right=type_label(right), op=op),
                pos,
            )
        return result

    def check_exponent(self, node: Node) -> None:
        """A written exponent must be whole and at most MAX_EXPONENT (a field's value: blank if not)."""
        negative = isinstance(node, Unary) and node.op == "-"
        literal = node.operand if isinstance(node, Unary) else node
        if isinstance(literal, Literal) and isinstance(literal.value, Decimal):
            value = -literal.value if negative else literal.value
            if value != value.to_integral_value() or abs(value) > MAX_EXPONENT:
                raise FormulaError(
                    _("指数应为 -%(n)s 到 %(n)s 之间的整数", n=MAX_EXPONENT), node.pos
                )

    def name_type(self, node: Name) -> str:
        kind = self.names.get(node.name)
        if kind is None:
            raise FormulaError(unknown_name_message(node.name, self.names), node.pos)
        if kind not in RESULT_TYPES:
            raise FormulaError(_("字段 %(name)s 的类型不能用于公式", name=node.name), node.pos)
        self.inputs.add(node.name)
        return kind

    def call_type(self, node: Call) -> str:
        function = FUNCTIONS.get(node.name)
        if function is None:
            message = _("未知的函数 %(name)s", name=node.name)
            close = difflib.get_close_matches(node.name, FUNCTIONS, n=3, cutoff=0.6)
            if close:
                message += _(",您是不是要用: %(names)s", names=", ".join(close))
            raise FormulaError(message, node.pos)
        if not function.accepts(len(node.args)):
            raise FormulaError(
                _("函数 %(name)s 需要 %(expected)s 个参数,实际为 %(count)s 个",
                  name=node.name, expected=function.arity_text(), count=len(node.args)),
                node.pos,
            )  # fmt: skip
        kinds = [self.check(arg) for arg in node.args]
        for index, (kind, arg) in enumerate(zip(kinds, node.args, strict=True)):
            accepted = function.param(index)
            if accepted != "*" and kind != BLANK and kind not in accepted.split("|"):
                expected = _("或").join(type_label(k) for k in accepted.split("|"))
                raise FormulaError(
                    _("函数 %(name)s 的第 %(n)s 个参数应为%(expected)s,实际为%(actual)s",
                      name=node.name, n=index + 1, expected=expected, actual=type_label(kind)),
                    arg.pos,
                )  # fmt: skip
        if node.name in TIME_FUNCTIONS:
            self.uses_today = True
        node.function = function
        return function.result(kinds, node) if callable(function.result) else function.result


def unknown_name_message(name: str, names: Mapping[str, str]) -> str:
    """"Unknown field" with the likely meant ones (a typo, the wrong case, a function sans brackets)."""
    if name.upper() in FUNCTIONS:
        return _("%(name)s 是函数,应写成 %(name)s(...)", name=name.upper())
    message = _("未知的字段 %(name)s", name=name)
    same_but_case = [known for known in names if known.lower() == name.lower()]
    close = same_but_case + [
        known for known in difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
        if known not in same_but_case
    ]  # fmt: skip
    if close:
        message += _(",您是不是要用: %(names)s", names=", ".join(close[:3]))
    return message


# --- values --------------------------------------------------------------------------------------
@dataclass
class Env:
    """What an evaluation reads: the record's values and the moment TODAY()/NOW() refer to."""

    values: Mapping[str, Any]
    now: dt.datetime


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def as_str(value: str | None) -> str:
    return value or ""


def as_date(value: dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def as_datetime(value: dt.date) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())


def plain(number: Decimal) -> str:
    """A number as text without exponent (1E+3 -> 1000), its decimals as they are."""
    if number.is_zero():
        number = number.copy_abs()
    if not number.is_finite() or abs(number.adjusted()) > 40:
        return str(number)  # absurdly large or small: the exponent keeps it short
    return format(number, "f")


def as_text(value: Any) -> str:
    """Any value as text, as `&`, CONCAT and TEXT show it (blank: empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"  # stored data: not translated to the current user's language
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


DATE_TEXT = re.compile(r"\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\s*")


def parse_date(text: str) -> dt.date | None:
    """A date from ISO text (2024-05-01, 2024-05-01T08:00), 2024/5/1 or 2024年5月1日; else None."""
    text = text.strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    moment = parse_datetime(text)
    if moment is not None:
        return moment.date()
    match = DATE_TEXT.fullmatch(text)
    if match:
        try:
            return dt.date(*(int(part) for part in match.groups()))
        except ValueError:
            return None
    return None


def parse_datetime(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return naive(moment)


def naive(moment: dt.datetime) -> dt.datetime:
    """Times are naive UTC in KeGuan: an aware one is converted."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def coerce(value: Any, kind: str) -> Any:
    """A record's value as the formula type of its field, None (blank) if it is not one."""
    if value is None:
        return None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
            return None
        try:
            number = Decimal(str(value).strip().replace(",", ""))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    if kind == "text":
        if isinstance(value, list | tuple):
            value = ", ".join(str(item) for item in value)
        text = value if isinstance(value, str) else as_text(value)
        return None if is_blank(text) else text
    if kind == "date":
        if isinstance(value, dt.date):
            return as_date(value)
        return parse_date(value) if isinstance(value, str) else None
    if kind == "datetime":
        if isinstance(value, dt.datetime):
            return naive(value)
        if isinstance(value, dt.date):
            return as_datetime(value)
        if not isinstance(value, str):
            return None
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            moment = as_datetime(day) if day else None
        return moment
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return True if text in TRUE_TEXTS else False if text in FALSE_TEXTS else None
    return None


def add_days(value: dt.date, days: Decimal) -> dt.date:
    """A date moves by whole days (the number's floor, as a spreadsheet shows it); a date-time by
    the exact fraction."""
    if isinstance(value, dt.datetime):
        microseconds = (days * 86_400_000_000).to_integral_value()
        return value + dt.timedelta(microseconds=whole(microseconds, 10**18))
    return value + dt.timedelta(days=whole(days.to_integral_value(ROUND_FLOOR), 10**7))


def days_between(end: dt.date, start: dt.date) -> Decimal:
    """end - start in days: whole for two dates, with the fraction when a time is involved."""
    if not isinstance(end, dt.datetime) and not isinstance(start, dt.datetime):
        return Decimal((end - start).days)
    delta = as_datetime(end) - as_datetime(start)
    microseconds = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(microseconds) / Decimal(86_400_000_000)


ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


def apply_operator(op: str, left: Any, right: Any) -> Any:
    """`left op right` for values the checker allowed; blank operands give blank (except `&`)."""
    if op == "&":
        return as_text(left) + as_text(right)
    if left is None or right is None:
        return None
    if op in ORDERINGS:
        if isinstance(left, dt.datetime) != isinstance(right, dt.datetime) and isinstance(left, dt.date):
            left, right = as_datetime(left), as_datetime(right)  # a date is its midnight
        return ORDERINGS[op](left, right)
    if isinstance(left, Decimal) and isinstance(right, Decimal):
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op == "/":
            return left / right
        remainder = left % right  # % takes the divisor's sign, as in spreadsheets: -7 % 3 = 2
        return remainder + right if remainder and (remainder < 0) != (right < 0) else remainder
    if isinstance(left, Decimal):  # number + date
        left, right = right, left
    if isinstance(right, Decimal):
        return add_days(left, right if op == "+" else -right)
    return days_between(left, right)


# --- the public API ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Formula:
    """A checked formula: what it computes, from what, and whether time changes its value."""

    source: str
    result_type: str  # one of RESULT_TYPES
    inputs: frozenset[str]  # field names the formula reads
    uses_today: bool  # TODAY()/NOW(): the value changes with time (recomputed daily)
    tree: Node | None = field(default=None, repr=False, compare=False)

    def evaluate(self, values: Mapping[str, Any], now: dt.datetime | None = None) -> Any:
        """The value for one record's `values`; blank (None) when the data allows none, never an
        error: a record save must not fail because of a formula."""
        if self.tree is None:
            return None
        moment = (now or dt.datetime.now()).replace(tzinfo=None)
        try:
            with localcontext(DECIMAL_CONTEXT):
                result = self.tree.evaluate(Env(values, moment))
        except Exception:  # a bug, not data: log it, but still let the record be saved
            logger.warning("formula %r failed", self.source, exc_info=True)
            return None
        return finish(result, self.result_type)


def finish(value: Any, kind: str) -> Any:
    """The result as the caller stores it: numbers within bounds, empty text blank."""
    if value is None:
        return None
    if kind == "number":
        if not isinstance(value, Decimal) or not value.is_finite() or abs(value) >= MAX_NUMBER:
            return None
        return value
    if kind == "text":
        return value if isinstance(value, str) and value != "" else None
    return value


def compile_formula(source: str, names: Mapping[str, str]) -> Formula:
    """Parse and type-check `source`; `names` maps each field a formula may read to its type (one of
    RESULT_TYPES). Raises FormulaError with a message for the admin."""
    if len(source) > MAX_LENGTH:
        raise FormulaError(_("公式不能超过 %(n)s 个字符", n=MAX_LENGTH))
    if not source.strip():
        raise FormulaError(_("请填写公式"))
    tree = Parser(tokenize(source)).parse()
    checker = Checker(names)
    result_type = checker.check(tree)
    if result_type == BLANK:
        raise FormulaError(_("公式的结果总是为空"), tree.pos)
    return Formula(source, result_type, frozenset(checker.inputs), checker.uses_today, tree)


def evaluation_order(formulas: Mapping[str, Formula]) -> list[str]:
    """Names of formula fields in an order where each comes after the formula fields it reads
    (a formula may read another formula field); raises FormulaError naming a cycle."""

    def reads(name: str) -> Sequence[str]:
        return sorted(other for other in formulas[name].inputs if other in formulas)

    order: list[str] = []
    done: set[str] = set()
    for root in formulas:
        if root in done:
            continue
        path = [root]  # the names being visited, each reading the next
        pending = [iter(reads(root))]
        while path:
            for other in pending[-1]:
                if other in path:
                    cycle = [*path[path.index(other) :], other]
                    raise FormulaError(_("公式字段循环引用: %(cycle)s", cycle=" → ".join(cycle)))
                if other not in done:
                    path.append(other)
                    pending.append(iter(reads(other)))
                    break
            else:
                done.add(path[-1])
                order.append(path.pop())
                pending.pop()
    return order
