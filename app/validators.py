"""Normalisers and checks for Chinese contact data: one function per kind of value.

Each `clean_*` takes raw input and returns the normalised value (or None for blank input),
or raises ValueError with a message for the user. The domain services call them; nothing else
re-implements a rule.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from urllib.parse import urlparse

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _
from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError as StdnumError

_SPACES = re.compile(r"\s+")
_PHONE_NOISE = re.compile(r"[\s\-()（）.]")


def to_half_width(text: str) -> str:
    """Full-width letters, digits and punctuation to half-width (ＡＢＣ１２３－ -> ABC123-).

    NFKC also turns the ideographic space into a plain one; Chinese characters are unchanged.
    """
    return unicodedata.normalize("NFKC", text)


def clean_text(value: Any, max_length: int | None = None) -> str | None:
    """Trim, half-width, collapse inner whitespace; blank becomes None."""
    if value is None:
        return None
    text = _SPACES.sub(" ", to_half_width(str(value))).strip()
    if not text:
        return None
    if max_length is not None and len(text) > max_length:
        raise ValueError(_("最多 %(n)s 个字符", n=max_length))
    return text


def _digits_only_phone(value: Any) -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    text = _PHONE_NOISE.sub("", text)
    for prefix in ("+86", "0086"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if text.startswith("86") and len(text) == 13:
        text = text[2:]
    return text


def clean_mobile(value: Any) -> str | None:
    """A mainland mobile number as 11 digits (+86 138-1234-5678 -> 13812345678)."""
    text = _digits_only_phone(value)
    if text is None:
        return None
    if not re.fullmatch(r"1\d{10}", text):
        raise ValueError(_("手机号应为 11 位数字,以 1 开头"))
    number = phonenumbers.parse(text, "CN")
    if not phonenumbers.is_valid_number(number) or phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise ValueError(_("不是有效的手机号码"))
    return text


def clean_phone(value: Any) -> str | None:
    """A landline (0546-8123456), a service number (400-...), or a mobile, normalised."""
    text = _digits_only_phone(value)
    if text is None:
        return None
    if not re.fullmatch(r"\d{5,12}", text):
        raise ValueError(_("电话号码只能包含数字,区号与号码之间可用 - 分隔"))
    if re.fullmatch(r"1\d{10}", text):
        return clean_mobile(text)
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        raise ValueError(_("不是有效的电话号码")) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(_("不是有效的电话号码 (固定电话需带区号,如 0546-8123456)"))
    national = str(number.national_number)
    area = phonenumbers.length_of_geographical_area_code(number)
    if area:
        return f"0{national[:area]}-{national[area:]}"
    if national.startswith(("400", "800")) and len(national) == 10:
        return f"{national[:3]}-{national[3:6]}-{national[6:]}"
    return national


def clean_email(value: Any) -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise ValueError(_("不是有效的电子邮箱地址")) from None
    return result.normalized.lower()


def clean_credit_code(value: Any) -> str | None:
    """统一社会信用代码: 18 characters with a check character (GB 32100-2015)."""
    text = clean_text(value)
    if text is None:
        return None
    text = text.replace(" ", "").replace("-", "").upper()
    if len(text) != 18:
        raise ValueError(_("统一社会信用代码应为 18 位"))
    try:
        return uscc.validate(text)
    except StdnumError:
        raise ValueError(_("统一社会信用代码校验位不正确")) from None


def clean_tax_number(value: Any) -> str | None:
    """纳税人识别号 (on invoices): 15, 18 or 20 digits and capital letters; 18 characters is the
    unified social credit code since 2015 and must pass its check character."""
    text = clean_text(value)
    if text is None:
        return None
    text = text.replace(" ", "").replace("-", "").upper()
    if len(text) not in (15, 18, 20) or not re.fullmatch(r"[0-9A-Z]+", text):
        raise ValueError(_("税号应为 15、18 或 20 位数字或大写字母"))
    return clean_credit_code(text) if len(text) == 18 else text


def clean_bank_account(value: Any) -> str | None:
    """A bank account number as printed on invoices: spaces removed, at most 40 characters."""
    text = clean_text(value, 60)
    text = (text or "").replace(" ", "")
    if len(text) > 40:
        raise ValueError(_("最多 %(n)s 个字符", n=40))
    return text or None


def clean_id_number(value: Any) -> str | None:
    """居民身份证号码: 18 characters, valid birth date and check digit (GB 11643-1999)."""
    text = clean_text(value)
    if text is None:
        return None
    text = text.replace(" ", "").upper()
    if not re.fullmatch(r"\d{17}[\dX]", text):
        raise ValueError(_("身份证号应为 18 位,最后一位可为 X"))
    try:
        return ric.validate(text)
    except StdnumError:
        raise ValueError(_("身份证号的出生日期或校验位不正确")) from None


def clean_url(value: Any) -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    if "://" not in text:
        text = "http://" + text
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or "." not in (parsed.hostname or ""):
        raise ValueError(_("不是有效的网址"))
    return text
