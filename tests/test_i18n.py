"""Every screen in zh_CN (default) and en, switched by the language menu."""

from __future__ import annotations

from typing import Any

import pytest

PAGES = [
    "/",
    "/customerview/list/",
    "/customerview/add",
    "/contactview/list/",
    "/departmentview/list/",
    "/search/?q=东营",
]


@pytest.mark.parametrize("path", PAGES)
def test_chinese_by_default(login_as, path: str) -> None:
    page = login_as("admin").get(path).get_data(as_text=True)
    assert "客户" in page and "Customers</a>" not in page


@pytest.mark.parametrize("path", PAGES)
def test_english_after_switching(login_as, path: str) -> None:
    client = login_as("admin")
    assert client.get("/lang/en").status_code == 302
    page = client.get(path).get_data(as_text=True)
    assert "Customer" in page, path
    assert "客户名称" not in page and "我负责的客户" not in page
    client.get("/lang/zh")
    assert "客户" in client.get(path).get_data(as_text=True)


def test_choice_labels_follow_language(login_as) -> None:
    client = login_as("admin")
    assert "重点客户" in client.get("/customerview/add").get_data(as_text=True)
    client.get("/lang/en")
    assert "Key customer" in client.get("/customerview/add").get_data(as_text=True)


def test_amounts_in_cny_and_times_in_local_zone(login_as, api_as) -> None:
    client, headers = api_as("admin")  # the credit limit is for Finance and Admin (field permissions)
    pk = client.post(
        "/api/v1/customer/", json={"name": "东营金额测试", "credit_limit": 1234567.5}, headers=headers
    ).json["id"]
    page = login_as("admin")
    assert "¥1,234,567.50" in page.get(f"/customerview/show/{pk}").get_data(as_text=True)
    page.get("/lang/en")
    assert "CN¥1,234,567.50" in page.get(f"/customerview/show/{pk}").get_data(as_text=True)


def test_every_message_in_the_code_has_an_english_translation() -> None:
    """Extract the Chinese messages from the code as `make i18n` does (babel.cfg, with the
    Choices extractor, with contexts: "plural" for menus and list titles) and look each up in
    the compiled English catalogue: a string added without `make i18n` and a translation would
    show in Chinese on an English screen."""
    import sys
    from pathlib import Path

    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg
    from babel.messages.mofile import read_mo

    root = Path(__file__).resolve().parent.parent
    extractors = str(root / "app" / "translations")  # choices_extractor, named in babel.cfg
    sys.path.insert(0, extractors)
    try:
        with open(root / "babel.cfg") as config:
            method_map, options_map = parse_mapping_cfg(config)
        plain: dict[str, Any] = dict.fromkeys(("_", "gettext", "lazy_gettext", "lazy"))
        keywords = {**plain, "lazy_pgettext": ((1, "c"), 2)}  # as `make i18n`: -k lazy_pgettext:1c,2
        found = {
            (message, context): filename
            for filename, _line, message, _comments, context in extract_from_dir(
                str(root), method_map, options_map, keywords=keywords
            )
        }
    finally:
        sys.path.remove(extractors)
    with open(root / "app/translations/en/LC_MESSAGES/messages.mo", "rb") as handle:
        english = read_mo(handle)
    translated = {
        (message.id, message.context.decode() if isinstance(message.context, bytes) else message.context)
        for message in english
        if message.id and message.string
    }  # (read_mo gives a context as bytes)
    missing = sorted(f"{filename}: {key}" for key, filename in found.items() if key not in translated)
    assert len(found) > 1000 and not missing, "run `make i18n` and translate:\n" + "\n".join(missing)
