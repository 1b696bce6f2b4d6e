"""One handler per custom-field type: the only code that switches on a field's type.

A handler turns input (from a form, the API or an import) into the value stored in the JSON
column, or raises ValueError with a message for the user. It also says which definition
options make sense for the type, so a definition can validate itself.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from flask_babel import lazy_gettext

if TYPE_CHECKING:
    from customfields.definitions import CustomField


class FieldType:
    """Base handler: subclasses set `code`, `label` and implement `to_storage`."""

    code: ClassVar[str]
    label: ClassVar[Any]
    #: definition options that mean something for this type
    options: ClassVar[frozenset[str]] = frozenset()

    def to_storage(self, value: Any, field: CustomField) -> Any:
        """The JSON value to store for `value` (never None: blank is handled by the caller)."""
        raise NotImplementedError

    def is_blank(self, value: Any) -> bool:
        return value is None or (isinstance(value, str) and not value.strip()) or value == []

    def filter_value(self, value: Any, field: CustomField) -> Any:
        """A value to compare stored values with (a list filter); the storage rule by default."""
        return self.to_storage(value, field)


class TextType(FieldType):
    code, label = "text", lazy_gettext("单行文本")
    options = frozenset({"max_length", "pattern"})
    default_max_length = 255

    def to_storage(self, value: Any, field: CustomField) -> str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(_("应为文本"))
        text = re.sub(r"\s+", " ", str(value)).strip() if self.code == "text" else str(value).strip()
        limit = field.max_length or self.default_max_length
        if len(text) > limit:
            raise ValueError(_("最多 %(n)s 个字符", n=limit))
        if field.pattern and not re.fullmatch(field.pattern, text):
            raise ValueError(_("格式不符合要求"))
        return text


class LongTextType(TextType):
    code, label = "long_text", lazy_gettext("多行文本")
    default_max_length = 10000


class IntegerType(FieldType):
    code, label = "integer", lazy_gettext("整数")
    options = frozenset({"min_value", "max_value"})

    def to_storage(self, value: Any, field: CustomField) -> int:
        number = parse_number(value, _("应为整数"))
        if number != number.to_integral_value():
            raise ValueError(_("应为整数"))
        check_range(number, field)
        return int(number)


class DecimalType(FieldType):
    code, label = "decimal", lazy_gettext("小数")
    options = frozenset({"min_value", "max_value"})
    places = 4

    def to_storage(self, value: Any, field: CustomField) -> str:
        number = parse_number(value, _("应为数字"))
        check_range(number, field)
        quantum = Decimal(1).scaleb(-self.places)
        value = number.quantize(quantum)
        return f"{value.normalize() if self.places > 2 else value:f}"  # never 4.2E+3


class CurrencyType(DecimalType):
    code, label = "currency", lazy_gettext("金额 (元)")
    places = 2


class PercentType(DecimalType):
    code, label = "percent", lazy_gettext("百分比")
    places = 2


class DateType(FieldType):
    code, label = "date", lazy_gettext("日期")
    options = frozenset({"min_value", "max_value"})

    def to_storage(self, value: Any, field: CustomField) -> str:
        if isinstance(value, dt.datetime):
            value = value.date()
        if not isinstance(value, dt.date):
            try:
                value = dt.date.fromisoformat(str(value).strip())
            except ValueError:
                raise ValueError(_("应为日期,格式 YYYY-MM-DD")) from None
        check_range(value, field)
        return value.isoformat()


class DateTimeType(FieldType):
    code, label = "datetime", lazy_gettext("日期时间")
    options = frozenset({"min_value", "max_value"})

    def to_storage(self, value: Any, field: CustomField) -> str:
        if not isinstance(value, dt.datetime):
            try:
                value = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(_("应为日期时间,格式 YYYY-MM-DD HH:MM")) from None
        if value.tzinfo is not None:  # stored as naive UTC, like every other time in KeGuan
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        check_range(value, field)
        return value.isoformat(timespec="seconds")


class BooleanType(FieldType):
    code, label = "boolean", lazy_gettext("是/否")
    TRUE = {"1", "true", "yes", "y", "on", "是", "对"}
    FALSE = {"0", "false", "no", "n", "off", "否", "不"}

    def to_storage(self, value: Any, field: CustomField) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise ValueError(_("应为是或否"))

    def is_blank(self, value: Any) -> bool:
        return value is None or (isinstance(value, str) and not value.strip())


class SelectType(FieldType):
    code, label = "select", lazy_gettext("单选")
    options = frozenset({"choices"})

    def to_storage(self, value: Any, field: CustomField) -> str:
        text = str(value).strip()
        if text not in field.choice_values:
            raise ValueError(_("不是有效的选项,可选: %(options)s", options=", ".join(field.choice_values)))
        return text


class MultiSelectType(FieldType):
    code, label = "multi_select", lazy_gettext("多选")
    options = frozenset({"choices"})

    def to_storage(self, value: Any, field: CustomField) -> list[str]:
        items = value if isinstance(value, list | tuple) else str(value).replace("，", ",").split(",")
        chosen = [str(item).strip() for item in items if str(item).strip()]
        wrong = [item for item in chosen if item not in field.choice_values]
        if wrong:
            raise ValueError(_("不是有效的选项: %(wrong)s", wrong=", ".join(wrong)))
        return [choice for choice in field.choice_values if choice in chosen]  # definition order


class EmailType(FieldType):
    code, label = "email", lazy_gettext("电子邮箱")

    def to_storage(self, value: Any, field: CustomField) -> str:
        try:
            return validate_email(str(value).strip(), check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            raise ValueError(_("不是有效的电子邮箱地址")) from None


class CleanerType(FieldType):
    """A type whose rule is one of the application's cleaners (phone numbers, URLs).

    The engine does not import the application; `configure_cleaners()` hands them in, so the
    custom phone field follows exactly the rule of the standard phone columns.
    """

    cleaner: Callable[[Any], str | None] | None = None

    def to_storage(self, value: Any, field: CustomField) -> str:
        if self.cleaner is None:
            raise RuntimeError(f"no cleaner configured for custom {self.code} fields")
        return self.cleaner(value) or ""


class PhoneType(CleanerType):
    code, label = "phone", lazy_gettext("电话")


class URLType(CleanerType):
    code, label = "url", lazy_gettext("网址")


class ReferenceType(FieldType):
    """The id of another record (a customer, a contact, a user...). Whether that record exists
    and the user may see it is checked by the application, which knows the entities."""

    code, label = "reference", lazy_gettext("关联记录")
    options = frozenset({"target_entity"})

    def to_storage(self, value: Any, field: CustomField) -> int:
        if isinstance(value, dict):
            value = value.get("id")
        if isinstance(value, bool) or not str(value).strip().isdigit() or int(str(value).strip()) < 1:
            raise ValueError(_("应为关联记录的 ID (正整数)"))
        return int(str(value).strip())


class FileType(FieldType):
    """Attachments: the value lists files already uploaded (see customfields.files), by id.

    What is stored is the server's description of each file (name, size, type), never the
    client's, and each file must have been uploaded for this very field.
    """

    code, label = "file", lazy_gettext("附件")
    options = frozenset({"file_types", "max_file_mb"})
    store: Any = None  # customfields.files.FileStore, configured by the application

    def to_storage(self, value: Any, field: CustomField) -> list[dict[str, Any]]:
        items = value if isinstance(value, list | tuple) else [value]
        files = []
        for item in items:
            file_id = item.get("id") if isinstance(item, dict) else item
            meta = self.store.describe(str(file_id)) if self.store is not None and file_id else None
            if meta is None or meta.get("entity") != field.entity or meta.get("field") != field.api_name:
                raise ValueError(_("附件 %(id)s 不存在,请先上传", id=str(file_id)[:40]))
            files.append({key: meta[key] for key in ("id", "name", "size", "type")})
        return files

    def filter_value(self, value: Any, field: CustomField) -> Any:
        raise ValueError(_("该类型的字段不支持此筛选"))


class FormulaType(FieldType):
    """Computed from other fields of the record (customfields.formula); stored, never typed in."""

    code, label = "formula", lazy_gettext("公式")
    options = frozenset({"formula"})

    def to_storage(self, value: Any, field: CustomField) -> Any:
        raise ValueError(_("公式字段由系统计算,不能填写"))


def parse_number(value: Any, message: str) -> Decimal:
    """A finite Decimal from a number or text (1,234.5 / ¥1,234.5 / 12.5%), else ValueError."""
    if isinstance(value, bool):
        raise ValueError(message)
    try:
        number = Decimal(str(value).strip().replace(",", "").removeprefix("¥").removesuffix("%"))
    except InvalidOperation:
        raise ValueError(message) from None
    if not number.is_finite():
        raise ValueError(message)
    return number


def check_range(value: Any, field: CustomField) -> None:
    """min_value/max_value of a number or date field (stored as text in the definition)."""
    low, high = field.bound("min_value"), field.bound("max_value")
    if low is not None and value < low:
        raise ValueError(_("不能小于 %(v)s", v=low))
    if high is not None and value > high:
        raise ValueError(_("不能大于 %(v)s", v=high))


def configure_cleaners(**cleaners: Callable[[Any], str | None]) -> None:
    """Give the cleaner-backed types their rule: configure_cleaners(phone=..., url=...)."""
    for code, cleaner in cleaners.items():
        handler = FIELD_TYPES[code]
        assert isinstance(handler, CleanerType), code
        handler.cleaner = cleaner


FIELD_TYPES: dict[str, FieldType] = {
    handler.code: handler
    for handler in (
        TextType(),
        LongTextType(),
        IntegerType(),
        DecimalType(),
        CurrencyType(),
        PercentType(),
        DateType(),
        DateTimeType(),
        BooleanType(),
        SelectType(),
        MultiSelectType(),
        EmailType(),
        PhoneType(),
        URLType(),
        ReferenceType(),
        FileType(),
        FormulaType(),
    )
}
