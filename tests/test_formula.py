"""Formula fields: the expression language of customfields.formula, without the database."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask_babel import Babel

from customfields.formula import (
    MAX_DEPTH,
    MAX_LENGTH,
    RESULT_TYPES,
    Formula,
    FormulaError,
    compile_formula,
    evaluation_order,
)

NAMES = {
    "annual_volume": "number",
    "unit_price": "number",
    "amount": "number",
    "a": "number",
    "b": "number",
    "first_order_date": "date",
    "contract_end": "date",
    "signed_at": "datetime",
    "visited_at": "datetime",
    "license_no": "text",
    "region_code": "text",
    "name": "text",
    "is_key": "boolean",
    "active": "boolean",
}
NOW = dt.datetime(2024, 6, 15, 10, 30)
D = Decimal


@pytest.fixture(autouse=True)
def app_context() -> Iterator[None]:
    """The language needs no database: a bare app with Babel (Chinese msgids) replaces the
    application and its database that tests/conftest.py sets up for every test."""
    app = Flask(__name__)
    Babel(app)
    with app.app_context():
        yield


def value(source: str, now: dt.datetime = NOW, **values: Any) -> Any:
    return compile_formula(source, NAMES).evaluate(values, now=now)


def error(source: str, names: dict[str, str] = NAMES) -> FormulaError:
    with pytest.raises(FormulaError) as info:
        compile_formula(source, names)
    return info.value


# --- the formulas admins write -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "values", "expected", "result_type"),
    [
        ("annual_volume * unit_price", {"annual_volume": 1200, "unit_price": "12.50"}, D("15000"), "number"),
        ('IF(annual_volume >= 1000, "重点", "普通")', {"annual_volume": D("1000")}, "重点", "text"),
        ('IF(annual_volume >= 1000, "重点", "普通")', {"annual_volume": 999.5}, "普通", "text"),
        ("DAYS(TODAY(), first_order_date)", {"first_order_date": "2024-06-01"}, D(14), "number"),
        ('license_no & "-" & region_code', {"license_no": "LN01", "region_code": "370"}, "LN01-370", "text"),
        ("ROUND(amount * 0.13, 2)", {"amount": "123.45"}, D("16.05"), "number"),
        ("IF(ISBLANK(contract_end), BLANK, DAYS(contract_end, TODAY()))", {}, None, "number"),
        (
            "IF(ISBLANK(contract_end), BLANK, DAYS(contract_end, TODAY()))",
            {"contract_end": dt.date(2024, 7, 1)},
            D(16),
            "number",
        ),
        (
            'IF(amount >= 100000, "A", IF(amount >= 10000, "B", IF(amount >= 1000, "C", "D")))',
            {"amount": 25000},
            "B",
            "text",
        ),
        ("IF（a＞1，“高”，“低”）", {"a": 2}, "高", "text"),
        ("IF（a＞1，“高”，“低”）", {"a": 1}, "低", "text"),
    ],
)
def test_typical_formulas(source: str, values: dict, expected: Any, result_type: str) -> None:
    formula = compile_formula(source, NAMES)
    assert formula.result_type == result_type
    result = formula.evaluate(values, now=NOW)
    assert result == expected and type(result) is type(expected)


def test_formula_describes_itself() -> None:
    formula = compile_formula("IF(ISBLANK(contract_end), BLANK, DAYS(contract_end, TODAY()))", NAMES)
    assert formula.source.startswith("IF(")
    assert formula.inputs == frozenset({"contract_end"})
    assert formula.uses_today is True
    plain = compile_formula("annual_volume * unit_price + annual_volume", NAMES)
    assert plain.inputs == frozenset({"annual_volume", "unit_price"}) and plain.uses_today is False
    assert compile_formula("NOW() - signed_at", NAMES).uses_today is True
    assert plain == compile_formula("annual_volume * unit_price + annual_volume", NAMES)
    assert hash(plain) == hash(compile_formula("annual_volume * unit_price + annual_volume", NAMES))


@pytest.mark.parametrize(
    ("source", "result_type"),
    [("a + 1", "number"), ("name", "text"), ("TODAY()", "date"), ("NOW()", "datetime"), ("a > 1", "boolean")],
)
def test_result_types(source: str, result_type: str) -> None:
    assert result_type in RESULT_TYPES
    assert compile_formula(source, NAMES).result_type == result_type


# --- operators -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", D(7)),
        ("(1 + 2) * 3", D(9)),
        ("10 - 2 - 3", D(5)),
        ("2 * 3 / 4", D("1.5")),
        ("10 / 4", D("2.5")),
        ("1 / 3", D("0.3333333333333333333333333333")),
        ("7 % 3", D(1)),
        ("-7 % 3", D(2)),
        ("7 % -3", D(-2)),
        ("7.5 % 2", D("1.5")),
        ("2 ^ 10", D(1024)),
        ("2 ^ 3 ^ 2", D(512)),
        ("-2 ^ 2", D(-4)),
        ("(-2) ^ 2", D(4)),
        ("2 ^ -1", D("0.5")),
        ("--3", D(3)),
        ("+3 - -3", D(6)),
        ("0.1 + 0.2", D("0.3")),
        (".5 * 2", D("1.0")),
        ("12. + 1", D(13)),
        ("1 + 2 * 3 ^ 2 - 4 / 2", D(17)),
    ],
)
def test_arithmetic(source: str, expected: Decimal) -> None:
    result = value(source)
    assert isinstance(result, Decimal) and result == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 = 1", True),
        ("1 == 1.0", True),
        ("1 != 1", False),
        ("1 <> 2", True),
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 2", True),
        ("2 >= 3", False),
        ('"abc" = "abc"', True),
        ('"abc" = "ABC"', False),
        ('"abc" < "abd"', True),
        ("DATE(2024, 1, 1) < DATE(2024, 1, 2)", True),
        ("DATE(2024, 6, 15) = TODAY()", True),
        ("NOW() > TODAY()", True),
        ("TODAY() = DATEVALUE(\"2024-06-15\")", True),
        ("DATE(2024, 6, 16) > NOW()", True),
        ("TRUE = TRUE", True),
        ("TRUE != FALSE", True),
        ("TRUE AND FALSE", False),
        ("TRUE and TRUE", True),
        ("FALSE OR TRUE", True),
        ("FALSE || FALSE", False),
        ("TRUE && TRUE", True),
        ("NOT TRUE", False),
        ("!FALSE", True),
        ("NOT 1 = 2", True),
        ("NOT 1 = 1 OR TRUE", True),
        ("TRUE OR TRUE AND FALSE", True),
        ("(TRUE OR TRUE) AND FALSE", False),
        ("1 < 2 = TRUE", True),
        ("FALSE AND 1 / 0 = 1", False),
    ],
)
def test_comparisons_and_logic(source: str, expected: bool) -> None:
    assert value(source) is expected


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ('"a" & "b"', {}, "ab"),
        ('name & "/" & a', {"name": "张三", "a": "12.50"}, "张三/12.50"),
        ('"v" & a', {"a": D("1E+3")}, "v1000"),
        ('"v" & a', {"a": D("-0.0")}, "v0.0"),
        ('"d:" & first_order_date', {"first_order_date": "2024-05-01"}, "d:2024-05-01"),
        ('"t:" & signed_at', {"signed_at": dt.datetime(2024, 5, 1, 8, 30)}, "t:2024-05-01 08:30:00"),
        ('"k:" & is_key', {"is_key": True}, "k:是"),
        ('"k:" & is_key', {"is_key": False}, "k:否"),
        ('"[" & name & "]"', {}, "[]"),
        ("1 & 2", {}, "12"),
    ],
)
def test_concatenation(source: str, values: dict, expected: str) -> None:
    assert value(source, **values) == expected


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("contract_end - first_order_date", {"contract_end": "2024-03-01", "first_order_date": "2024-02-01"},
         D(29)),
        ("first_order_date + 10", {"first_order_date": "2024-02-25"}, dt.date(2024, 3, 6)),
        ("10 + first_order_date", {"first_order_date": "2024-02-25"}, dt.date(2024, 3, 6)),
        ("first_order_date - 1", {"first_order_date": "2024-03-01"}, dt.date(2024, 2, 29)),
        ("first_order_date + 1.5", {"first_order_date": "2024-03-01"}, dt.date(2024, 3, 2)),
        ("first_order_date - 0.5", {"first_order_date": "2024-03-01"}, dt.date(2024, 2, 29)),
        ("visited_at - signed_at", {"visited_at": "2024-01-02T12:00:00", "signed_at": "2024-01-01 00:00"},
         D("1.5")),
        ("signed_at + 0.25", {"signed_at": "2024-01-01T00:00"}, dt.datetime(2024, 1, 1, 6)),
        ("signed_at - 1", {"signed_at": dt.datetime(2024, 1, 1, 6)}, dt.datetime(2023, 12, 31, 6)),
        ("signed_at - first_order_date",
         {"signed_at": "2024-01-02T06:00:00", "first_order_date": dt.date(2024, 1, 1)}, D("1.25")),
        ("first_order_date < signed_at",
         {"signed_at": "2024-01-01T06:00:00", "first_order_date": dt.date(2024, 1, 1)}, True),
        ("first_order_date = signed_at",
         {"signed_at": "2024-01-01T00:00:00", "first_order_date": dt.date(2024, 1, 1)}, True),
    ],
)
def test_date_arithmetic(source: str, values: dict, expected: Any) -> None:
    result = value(source, **values)
    assert result == expected and type(result) is type(expected)


# --- functions -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ('IF(a > 1, "y", "n")', {"a": 2}, "y"),
        ('IF(a > 1, "y")', {"a": 0}, None),
        ('if(a > 1, "y", "n")', {}, "n"),
        ("IF(is_key, 1, BLANK)", {"is_key": True}, D(1)),
        ("IF(TRUE, 1, 1 / 0)", {}, D(1)),
        ("AND(TRUE, is_key, active)", {"is_key": True, "active": "是"}, True),
        ("AND(TRUE, is_key)", {}, False),
        ("OR(FALSE, is_key)", {"is_key": "yes"}, True),
        ("Or(FALSE, active)", {}, False),
        ("NOT(is_key)", {"is_key": False}, True),
        ("NOT(is_key)", {}, True),
        ("ISBLANK(name)", {"name": "   "}, True),
        ("ISBLANK(name)", {"name": "x"}, False),
        ("ISBLANK(a)", {"a": 0}, False),
        ("COALESCE(contract_end, first_order_date)", {"first_order_date": "2024-01-01"}, dt.date(2024, 1, 1)),
        ('COALESCE(name, license_no, "无")', {"name": ""}, "无"),
        ("COALESCE(BLANK, a)", {"a": 3}, D(3)),
        ("ROUND(2.5)", {}, D(3)),
        ("ROUND(-2.5)", {}, D(-3)),
        ("ROUND(1.005, 2)", {}, D("1.01")),
        ("ROUND(1234.5678, -2)", {}, D(1200)),
        ("ROUND(a, 1)", {"a": "2.25"}, D("2.3")),
        ("FLOOR(2.7)", {}, D(2)),
        ("FLOOR(-2.2)", {}, D(-3)),
        ("CEIL(2.1)", {}, D(3)),
        ("ceil(-2.7)", {}, D(-2)),
        ("ABS(-4.5)", {}, D("4.5")),
        ("MIN(3, a, 1.5)", {"a": 2}, D("1.5")),
        ("MIN(3, a)", {}, D(3)),
        ("MAX(3, a, 1.5)", {"a": 7}, D(7)),
        ("MAX(first_order_date, contract_end)",
         {"first_order_date": "2024-01-01", "contract_end": "2024-02-01"}, dt.date(2024, 2, 1)),
        ("MIN(signed_at, visited_at)", {"signed_at": "2024-01-01T08:00"}, dt.datetime(2024, 1, 1, 8)),
        ("MAX(a, b)", {}, None),
        ("SUM(1, 2, a, b)", {"a": "3.5"}, D("6.5")),
        ("SUM(a, b)", {}, D(0)),
        ('CONCAT("a", 1, TRUE, name, DATE(2024, 1, 2))', {}, "a1是2024-01-02"),
        ("LEN(name)", {"name": "客户关系"}, D(4)),
        ("LEN(name)", {}, D(0)),
        ("UPPER(name)", {"name": "Abc"}, "ABC"),
        ("LOWER(name)", {"name": "AbC"}, "abc"),
        ("TRIM(name)", {"name": "  a   b \t c  "}, "a b c"),
        ("UPPER(name)", {}, None),
        ("LEFT(license_no, 2)", {"license_no": "LN2024"}, "LN"),
        ("LEFT(license_no)", {"license_no": "LN2024"}, "L"),
        ("LEFT(license_no, 99)", {"license_no": "LN"}, "LN"),
        ("RIGHT(license_no, 4)", {"license_no": "LN2024"}, "2024"),
        ("RIGHT(license_no, 99)", {"license_no": "LN"}, "LN"),
        ("RIGHT(license_no, 0)", {"license_no": "LN"}, None),
        ("LEFT(license_no, -1)", {"license_no": "LN"}, None),
        ('CONTAINS(name, "有限")', {"name": "东营有限公司"}, True),
        ('CONTAINS(name, "股份")', {"name": "东营有限公司"}, False),
        ('CONTAINS(name, "x")', {}, False),
        ("TEXT(a)", {"a": "12.50"}, "12.50"),
        ("TEXT(a, 1)", {"a": "12.25"}, "12.3"),
        ("TEXT(a, 2)", {"a": 3}, "3.00"),
        ("TEXT(1 / 4)", {}, "0.25"),
        ("TEXT(a)", {"a": D("1.5E+4")}, "15000"),
        ("TEXT(first_order_date)", {"first_order_date": dt.date(2024, 5, 1)}, "2024-05-01"),
        ("TEXT(signed_at)", {"signed_at": "2024-05-01T08:30:00Z"}, "2024-05-01 08:30:00"),
        ("TEXT(is_key)", {"is_key": True}, "是"),
        ("TEXT(name)", {}, None),
        ("TODAY()", {}, dt.date(2024, 6, 15)),
        ("NOW()", {}, NOW),
        ("DATE(2024, 2, 29)", {}, dt.date(2024, 2, 29)),
        ("DATE(2023, 2, 29)", {}, None),
        ("DATE(a, 1, 1)", {}, None),
        ("YEAR(first_order_date)", {"first_order_date": "2023-04-05"}, D(2023)),
        ("MONTH(first_order_date)", {"first_order_date": "2023-04-05"}, D(4)),
        ("DAY(signed_at)", {"signed_at": "2023-04-05T23:59:00"}, D(5)),
        ("DAYS(contract_end, first_order_date)",
         {"contract_end": "2024-01-01", "first_order_date": "2023-01-01"}, D(365)),
        ("DAYS(visited_at, signed_at)",
         {"visited_at": "2024-01-02T01:00", "signed_at": "2024-01-01T23:00"}, D(1)),  # calendar days
        ("DAYS(TODAY(), signed_at)", {"signed_at": "2024-06-14T23:00"}, D(1)),
        ("ADD_DAYS(first_order_date, 30)", {"first_order_date": "2024-02-01"}, dt.date(2024, 3, 2)),
        ("ADD_DAYS(signed_at, -0.5)", {"signed_at": "2024-02-01T00:00"}, dt.datetime(2024, 1, 31, 12)),
        ("ADD_MONTHS(first_order_date, 1)", {"first_order_date": "2024-01-31"}, dt.date(2024, 2, 29)),
        ("ADD_MONTHS(first_order_date, 12)", {"first_order_date": "2024-02-29"}, dt.date(2025, 2, 28)),
        ("ADD_MONTHS(first_order_date, -2)", {"first_order_date": "2024-01-15"}, dt.date(2023, 11, 15)),
        ("ADD_MONTHS(signed_at, 1)", {"signed_at": "2024-03-31T09:00"}, dt.datetime(2024, 4, 30, 9)),
        ('DATEVALUE("2024-05-01")', {}, dt.date(2024, 5, 1)),
        ('DATEVALUE("2024/5/1")', {}, dt.date(2024, 5, 1)),
        ('DATEVALUE("2024年5月1日")', {}, dt.date(2024, 5, 1)),
        ('DATEVALUE("2024-05-01T08:00:00")', {}, dt.date(2024, 5, 1)),
        ('DATEVALUE("下周一")', {}, None),
        ("DATEVALUE(name)", {}, None),
        ("DATEVALUE(signed_at)", {"signed_at": "2024-05-01T08:00"}, dt.date(2024, 5, 1)),
    ],
)
def test_functions(source: str, values: dict, expected: Any) -> None:
    result = value(source, **values)
    assert result == expected and type(result) is type(expected)


def test_today_defaults_to_now() -> None:
    formula = compile_formula("TODAY()", NAMES)
    assert formula.evaluate({}) == dt.date.today()
    aware = dt.datetime(2024, 1, 1, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert compile_formula("NOW()", NAMES).evaluate({}, now=aware) == dt.datetime(2024, 1, 1, 23, 0)


# --- blanks and the values a record hands in -----------------------------------------------------
@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("a + 1", {}, None),
        ("a * b", {"a": 2, "b": None}, None),
        ("-a", {}, None),
        ("a ^ 2", {}, None),
        ("first_order_date + 1", {}, None),
        ("a > 1", {}, None),
        ("name = \"x\"", {}, None),
        ("a = BLANK", {}, True),
        ("a = BLANK", {"a": 0}, False),
        ("BLANK = name", {"name": " "}, True),
        ("a != BLANK", {"a": 1}, True),
        ("a <> NULL", {}, False),
        ('IF(a > 1, "y", "n")', {}, "n"),
        ("is_key AND TRUE", {}, False),
        ("is_key OR TRUE", {}, True),
        ("NOT is_key", {}, True),
        ("name & license_no", {}, None),
        ('"x" & BLANK', {}, "x"),
        ("a + BLANK", {"a": 1}, None),
        ("COALESCE(a, 0) + 1", {}, D(1)),
    ],
)
def test_blanks(source: str, values: dict, expected: Any) -> None:
    result = value(source, **values)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("a", "12.50", D("12.50")),
        ("a", " 1,234.5 ", D("1234.5")),
        ("a", 7, D(7)),
        ("a", 0.1, D("0.1")),
        ("a", D("3.14"), D("3.14")),
        ("a", "abc", None),
        ("a", "", None),
        ("a", "NaN", None),
        ("a", "Infinity", None),
        ("a", True, None),
        ("a", [1], None),
        ("name", "文本", "文本"),
        ("name", 42, "42"),
        ("name", ["A", "B"], "A, B"),
        ("first_order_date", "2024-05-01", dt.date(2024, 5, 1)),
        ("first_order_date", "2024-05-01T10:00:00", dt.date(2024, 5, 1)),
        ("first_order_date", dt.datetime(2024, 5, 1, 10), dt.date(2024, 5, 1)),
        ("first_order_date", "not a date", None),
        ("first_order_date", 20240501, None),
        ("signed_at", "2024-05-01T10:00:00", dt.datetime(2024, 5, 1, 10)),
        ("signed_at", "2024-05-01T10:00:00Z", dt.datetime(2024, 5, 1, 10)),
        ("signed_at", "2024-05-01T10:00:00+08:00", dt.datetime(2024, 5, 1, 2)),
        ("signed_at", "2024-05-01", dt.datetime(2024, 5, 1)),
        ("signed_at", dt.date(2024, 5, 1), dt.datetime(2024, 5, 1)),
        ("signed_at", "2024-13-01", None),
        ("is_key", True, True),
        ("is_key", "否", False),
        ("is_key", "TRUE", True),
        ("is_key", 0, False),
        ("is_key", "maybe", None),
    ],
)
def test_values_are_read_as_their_type(name: str, given: Any, expected: Any) -> None:
    result = value(name, **{name: given})
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "values"),
    [
        ("a / 0", {"a": 1}),
        ("0 / 0", {}),
        ("a % b", {"a": 1, "b": 0}),
        ("0 ^ -1", {}),
        ("0 ^ 0", {}),
        ("a ^ b", {"a": 2, "b": "0.5"}),
        ("a ^ b", {"a": 2, "b": 101}),
        ("a ^ 100 * a ^ 100", {"a": "1E+9000"}),
        ("a * 1", {"a": "1E+30"}),
        ("a * 10", {"a": "99999999999999999999"}),
        ("ROUND(a, 30)", {"a": "123456789"}),
        ("ROUND(a, b)", {"a": 1, "b": "1E+30"}),
        ("first_order_date + a", {"first_order_date": "2024-01-01", "a": "1E+30"}),
        ("first_order_date - a", {"first_order_date": "0001-01-01", "a": 1}),
        ("signed_at + a", {"signed_at": "9999-12-31T23:00", "a": 1}),
        ("ADD_DAYS(first_order_date, a)", {"first_order_date": "2024-01-01", "a": 10**8}),
        ("ADD_MONTHS(first_order_date, a)", {"first_order_date": "9999-12-01", "a": 1}),
        ("ADD_MONTHS(first_order_date, a)", {"first_order_date": "2024-01-01", "a": "1E+30"}),
        ("DATE(a, 1, 1)", {"a": 0}),
        ("DATE(2024, a, 1)", {"a": "1E+400"}),
        ("LEFT(name, a)", {"name": "x", "a": "1E+30"}),
        ("TEXT(a / b, 2)", {"a": 1, "b": 0}),
    ],
)
def test_evaluation_never_raises_on_data(source: str, values: dict) -> None:
    assert value(source, **values) is None


def test_numbers_stay_exact_and_decimal() -> None:
    assert value("a * b", a=0.1, b=3) == D("0.3")
    assert value("a + b", a="0.10", b="0.20") == D("0.30")
    assert value("a + b", a="1E-20", b=1) == D("1.00000000000000000001")
    assert value("a + b", a="1E-30", b=1) == 1  # 28 significant digits
    assert value("a * 1", a="100000000000000000000") is None  # >= 1E20: more than the caller stores
    assert value("a * 1", a="9999999999999999999.9999") == D("9999999999999999999.9999")


# --- compile-time errors -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "position", "fragment"),
    [
        ("license_no + 1", 12, "不能对文本和数字使用 +"),
        ('a * "x"', 3, "不能对数字和文本使用 *"),
        ("name - name", 6, "不能对文本和文本使用 -"),
        ("first_order_date * 2", 18, "不能对日期和数字使用 *"),
        ("1 - first_order_date", 3, "不能对数字和日期使用 -"),
        ("is_key < active", 8, "不能对是/否和是/否使用 <"),
        ('a > "1"', 3, "不能对数字和文本使用 >"),
        ("a AND TRUE", 3, "不能对数字和是/否使用 AND"),
        ("-name", 1, "不能对文本使用 -"),
        ("NOT a", 1, "不能对数字使用 NOT"),
        ('IF(a, 1, 2)', 4, "函数 IF 的第 1 个参数应为是/否,实际为数字"),
        ('IF(a > 1, 1, "x")', 14, "函数 IF 的参数类型应一致,不能同时有数字和文本"),
        ("COALESCE(a, name)", 13, "参数类型应一致"),
        ("MIN(first_order_date, signed_at)", 23, "参数类型应一致"),
        ("LEN(a)", 5, "函数 LEN 的第 1 个参数应为文本,实际为数字"),
        ("YEAR(name)", 6, "应为日期或日期时间,实际为文本"),
        ("SUM(1, 2, name)", 11, "函数 SUM 的第 3 个参数应为数字"),
        ("TEXT(name, 2)", 12, "只有数字才能指定小数位数"),
        ("ROUND()", 1, "函数 ROUND 需要 1 到 2 个参数,实际为 0 个"),
        ("ROUND(1, 2, 3)", 1, "实际为 3 个"),
        ("TODAY(1)", 1, "函数 TODAY 需要 0 个参数"),
        ("DAYS(TODAY())", 1, "函数 DAYS 需要 2 个参数"),
        ("MAX()", 1, "需要 至少 1 个参数"),
        ("BLANK", 1, "公式的结果总是为空"),
        ("IF(a > 1, BLANK, NULL)", 1, "公式的结果总是为空"),
        ("-BLANK + BLANK", 1, "公式的结果总是为空"),
        ("2 ^ 101", 5, "指数应为 -100 到 100 之间的整数"),
        ("2 ^ -101", 5, "指数应为 -100 到 100 之间的整数"),
        ("2 ^ 0.5", 5, "指数应为"),
    ],
)
def test_type_errors(source: str, position: int, fragment: str) -> None:
    problem = error(source)
    assert problem.position == position
    assert fragment in str(problem)
    assert str(problem).startswith(f"第 {position} 个字符: ")


@pytest.mark.parametrize(
    ("source", "position", "fragment"),
    [
        ("a +", 4, "公式不完整"),
        ("", None, "请填写公式"),
        ("   ", None, "请填写公式"),
        ("(a + 1", 1, "括号没有闭合"),
        ("ROUND(a, 2", 6, "括号没有闭合"),
        ("ROUND((a, 2)", 9, "此处应为右括号,而不是 ,"),
        ("a + 1)", 6, "多余的右括号"),
        ("ROUND(a 2)", 9, "此处应为逗号或右括号,而不是 2"),
        ("IF(a > 1,, 2)", 10, "缺少参数"),
        ("IF(a > 1, 1,)", 13, "缺少参数"),
        ("ROUND(, 2)", 7, "缺少参数"),
        ("ROUND(a +)", 10, "此处不应出现 )"),
        ("(, 1)", 2, "此处不应出现 ,"),
        ("a b", 3, "此处不应出现 b"),
        ("a + * b", 5, "此处不应出现 *"),
        ("a AND", 6, "公式不完整"),
        ("AND a", 1, "此处不应出现 AND"),
        ('"abc', 1, "字符串缺少结束引号"),
        ("name & 'abc", 8, "字符串缺少结束引号"),
        ("a # 2", 3, "无法识别的字符 #"),
        ("a + 客户", 5, "无法识别的字符 客"),
        ("1E3", 2, "此处不应出现 E3"),
        ("1.2.3", 4, "此处不应出现 .3"),
        ("a ! b", 3, "此处不应出现 !"),
        ("= a = ", 7, "公式不完整"),
        ("a ===b", 5, "此处不应出现 ="),
    ],
)
def test_syntax_errors(source: str, position: int | None, fragment: str) -> None:
    problem = error(source)
    assert problem.position == position
    assert fragment in str(problem)


def test_unknown_names_suggest_close_ones() -> None:
    problem = error("anual_volume * 2")
    assert problem.position == 1
    assert "未知的字段 anual_volume" in str(problem) and "annual_volume" in str(problem).split(":")[-1]
    assert "您是不是要用: amount" in str(error("Amount + 1"))  # field names are case-sensitive
    assert "您是不是要用" not in str(error("zzz + 1"))
    problem = error("a + today")
    assert problem.position == 5 and "TODAY 是函数,应写成 TODAY(...)" in str(problem)


def test_unknown_functions() -> None:
    problem = error("a + ROUNDUP(a)")
    assert problem.position == 5 and "未知的函数 ROUNDUP" in str(problem) and "ROUND" in str(problem)
    assert "未知的函数 AMOUNT" in str(error("amount(1)"))


def test_names_typed_outside_the_formula_types_are_refused() -> None:
    assert "类型不能用于公式" in str(error("files", {"files": "file"}))


def test_keywords_and_functions_ignore_case_names_do_not() -> None:
    assert value("if(true, 1, 2)") == 1
    assert value("Round(2.5) + aBs(-1)") == D(4)
    assert value("not False and TRUE or false") is True
    assert value("a = null", a=None) is True
    names = {"Total": "number", "total": "number"}
    assert compile_formula("Total - total", names).evaluate({"Total": 5, "total": 2}) == 3


def test_leading_equals_sign_is_accepted() -> None:
    assert value("=1 + 1") == 2
    assert error("==1").position == 1


# --- Chinese input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("IF（a＞1，“高”，“低”）", {"a": 5}, "高"),
        ("IF(a > 1, ‘高’, ‘低’)", {"a": 0}, "低"),
        ("１２ ＋ ３ × ２", {}, D(18)),
        ("ａ ＊ ２", {"a": 4}, D(8)),
        ("(a ÷ ４) － 1", {"a": 8}, D(1)),
        ("a ≠ 1", {"a": 2}, True),
        ("a ≤ 1", {"a": 1}, True),
        ("a ≥ 2", {"a": 1}, False),
        ("a　＝　1", {"a": 1}, True),  # ideographic spaces
        ("ＮＯＴ（ａ ＜＞ 1）", {"a": 1}, True),
        ("name ＆ “（全角）”", {"name": "甲"}, "甲（全角）"),  # strings keep what they say
        ("“a＋b，１”", {}, "a＋b，１"),
        ("“他说‘好’”", {}, "他说‘好’"),
    ],
)
def test_full_width_input(source: str, values: dict, expected: Any) -> None:
    assert value(source, **values) == expected


def test_full_width_positions_point_into_the_source() -> None:
    problem = error("“高” ＋ ａ")  # text + number: the position of ＋ in what the admin typed
    assert problem.position == 5 and "不能对文本和数字使用 +" in str(problem)
    assert error("IF（a＞1，“高”，1）").position == 12
    assert error("“未闭合").position == 1


def test_string_escapes() -> None:
    assert value(r"'it\'s'") == "it's"
    assert value(r'"say \"hi\""') == 'say "hi"'
    assert value(r'"a\\b"') == "a\\b"
    assert value(r'"C:\temp"') == "C:\\temp"
    assert value(r'"‘引号’" & "\“"') == "‘引号’“"


# --- limits --------------------------------------------------------------------------------------
def test_length_limit() -> None:
    longest = "1" + " " * (MAX_LENGTH - 1)
    assert value(longest) == 1
    problem = error(longest + " ")
    assert problem.position is None and f"公式不能超过 {MAX_LENGTH} 个字符" in str(problem)


def test_nesting_limit() -> None:
    deep = "IF(a > 1, " * (MAX_DEPTH - 2) + "1" + ", 0)" * (MAX_DEPTH - 2)  # the tree: 50 levels
    assert value(deep, a=2) == 1
    too_deep = "IF(a > 1, " * (MAX_DEPTH + 1) + "1" + ", 0)" * (MAX_DEPTH + 1)
    assert f"公式嵌套不能超过 {MAX_DEPTH} 层" in str(error(too_deep))
    assert f"不能超过 {MAX_DEPTH} 层" in str(error("(" * 500 + "1" + ")" * 500))
    assert f"不能超过 {MAX_DEPTH} 层" in str(error("-" * 500 + "1"))
    assert f"不能超过 {MAX_DEPTH} 层" in str(error("NOT " * 300 + "TRUE"))
    assert f"不能超过 {MAX_DEPTH} 层" in str(error("2" + " ^ 1" * 200))
    assert value("(((((((((((1)))))))))))") == 1


def test_long_flat_chains_are_not_deep() -> None:
    assert value("+".join(["1"] * 1000)) == 1000
    assert value(" & ".join(['"a"'] * 300)) == "a" * 300
    assert value(" OR ".join(["FALSE"] * 200) + " OR TRUE") is True
    assert value("SUM(" + ",".join(["1"] * 900) + ")") == 900


# --- evaluation order of formula fields ----------------------------------------------------------
def formulas(**sources: str) -> dict[str, Formula]:
    names = {**NAMES, **{name: "number" for name in sources}}
    return {name: compile_formula(source, names) for name, source in sources.items()}


def test_evaluation_order_puts_inputs_first() -> None:
    compiled = formulas(total="net + tax", tax="net * 0.13", net="a * b", other="a + 1")
    order = evaluation_order(compiled)
    assert sorted(order) == ["net", "other", "tax", "total"]
    assert order.index("net") < order.index("tax") < order.index("total")
    assert evaluation_order(compiled) == order  # deterministic
    assert evaluation_order({}) == []


def test_evaluation_order_names_the_cycle() -> None:
    problem = error_of(lambda: evaluation_order(formulas(x="y + 1", y="z * 2", z="x - 1", w="a")))
    assert "循环引用" in str(problem)
    assert str(problem) == "公式字段循环引用: x → y → z → x"
    assert "me → me" in str(error_of(lambda: evaluation_order(formulas(me="me + 1"))))


def error_of(action: Any) -> FormulaError:
    with pytest.raises(FormulaError) as info:
        action()
    return info.value


# --- robustness ----------------------------------------------------------------------------------
FUZZ_PIECES = [
    *NAMES, "1", "0", "2.5", "100", "101", "-", "+", "*", "/", "%", "^", "&", "=", "==", "!=", "<>", "<",
    "<=", ">", ">=", "!", "(", ")", ",", "AND", "OR", "NOT", "TRUE", "FALSE", "BLANK", "NULL", "&&", "||",
    '"x"', "'y'", "“中”", '"', "'", "“", "（", "）", "，", "＋", "１", "ａ", "客", "#", ".", " ", "\\", "\t",
    "IF(", "ROUND(", "SUM(", "MIN(", "MAX(", "CONCAT(", "LEFT(", "TEXT(", "DAYS(", "TODAY()", "NOW()",
    "DATE(", "ADD_MONTHS(", "ADD_DAYS(", "COALESCE(", "ISBLANK(", "DATEVALUE(", "LEN(", "YEAR(", "FOO(",
]  # fmt: skip
FUZZ_OPERANDS = [
    *NAMES, "1", "0", "-2.5", "101", "TRUE", "BLANK", '"x"', "TODAY()", "NOW()", "DATE(2024, 2, 29)",
    "ROUND(a, b)", "SUM(a, b)", "MAX(a, b)", "LEN(name)", "TEXT(a, b)", "ADD_MONTHS(contract_end, a)",
    "ADD_DAYS(signed_at, b)", "DAYS(contract_end, first_order_date)", "IF(is_key, a, b)", "(a ^ b)",
]  # fmt: skip
FUZZ_OPERATORS = ["+", "-", "*", "/", "%", "^", "&", "=", "!=", "<", ">=", "AND", "OR"]
FUZZ_VALUES: dict[str, list[Any]] = {
    "number": [None, 0, 1, -3, "2.5", "1E+30", "x", D("0.001")],
    "text": [None, "", "abc", "2024-01-01", 5],
    "date": [None, "2024-02-29", "0001-01-01", "9999-12-31", "bad", dt.date(2024, 1, 31)],
    "datetime": [None, "2024-01-01T08:00:00", "9999-12-31T23:59:59", dt.datetime(2024, 1, 1), "bad"],
    "boolean": [None, True, False, "否"],
}

PYTHON_TYPES = {"number": Decimal, "text": str, "date": dt.date, "datetime": dt.datetime, "boolean": bool}


def fuzz_source(rng: random.Random) -> str:
    """Random pieces; half of the time alternating operands and operators, which often compiles."""
    if rng.random() < 0.5:
        return " ".join(rng.choice(FUZZ_PIECES) for _ in range(rng.randint(1, 12)))
    parts = [rng.choice(FUZZ_OPERANDS)]
    for _ in range(rng.randint(0, 4)):
        parts += [rng.choice(FUZZ_OPERATORS), rng.choice(FUZZ_OPERANDS)]
    return " ".join(parts)


def test_random_input_only_ever_raises_formula_error(caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(20240615)
    started, compiled = time.monotonic(), 0
    for _ in range(3000):
        source = fuzz_source(rng)
        try:
            formula = compile_formula(source, NAMES)
        except FormulaError as exc:
            assert str(exc) and (exc.position is None or 1 <= exc.position <= len(source) + 1), source
            continue
        compiled += 1
        for _ in range(3):
            values = {name: rng.choice(FUZZ_VALUES[kind]) for name, kind in NAMES.items()}
            result = formula.evaluate(values, now=NOW)
            assert result is None or isinstance(result, PYTHON_TYPES[formula.result_type]), source
    assert compiled > 500  # the generator does reach the evaluator
    assert not caplog.records  # evaluate() never fell back on its last-resort catch (a bug)
    assert time.monotonic() - started < 2


def test_date_results_are_dates_not_datetimes() -> None:
    for source in ("first_order_date + 1", "MIN(first_order_date)", "ADD_MONTHS(first_order_date, 1)"):
        assert type(value(source, first_order_date=dt.datetime(2024, 1, 1, 5))) is dt.date


# --- messages outside the application ------------------------------------------------------------
def test_messages_without_any_app_context() -> None:
    messages: list[str] = []

    def compile_in_thread() -> None:  # a new thread starts without Flask's context
        messages.append(str(error_of(lambda: compile_formula("a +", NAMES))))

    thread = threading.Thread(target=compile_in_thread)
    thread.start()
    thread.join()
    assert messages == ["第 4 个字符: 公式不完整"]


def test_messages_in_an_app_without_babel() -> None:
    with Flask("no_babel").app_context():
        assert str(error("name + 1")) == "第 6 个字符: 不能对文本和数字使用 +"
        assert str(error("x", {})) == "第 1 个字符: 未知的字段 x"
