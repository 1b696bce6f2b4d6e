"""The province/city/district hierarchy, loaded from the data file that `cpca` ships.

cpca's `resources/adcodes.csv` holds mainland China's administrative division codes; its
parser turns a free-text address into province, city and district.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from models.customers import Region

PLACEHOLDER = "市辖区"


def _level(code: int) -> int:
    if code % 10000 == 0:
        return 1
    if code % 100 == 0:
        return 2
    return 3


def region_rows() -> list[dict]:
    """Rows for crm_region: every province, city and district with its parent code.

    A municipality's city level is the placeholder 市辖区; it is kept under the province's name
    (北京市 > 北京市 > 东城区) so every district has a city. Empty placeholders are dropped.
    """
    source = resources.files("cpca").joinpath("resources/adcodes.csv")
    with source.open(encoding="utf-8") as handle:
        raw = {int(row["adcode"]) // 1_000_000: row["name"] for row in csv.DictReader(handle)}
    codes = set(raw)
    rows: dict[int, dict] = {}
    for code, name in raw.items():
        level = _level(code)
        if name == PLACEHOLDER:
            has_children = any(c // 100 == code // 100 and c != code for c in codes)
            if level != 2 or not has_children:
                continue
            name = raw.get(code // 10000 * 10000, name)
        parent = None
        if level == 2:
            parent = code // 10000 * 10000
        elif level == 3:
            parent = code // 100 * 100
            if parent not in raw:
                parent = code // 10000 * 10000
        rows[code] = {"code": code, "name": name, "level": level, "parent_code": parent}
    return sorted(rows.values(), key=lambda r: r["code"])


def load_regions(session: Session) -> int:
    """Fill crm_region once (idempotent); returns the number of rows inserted."""
    if session.scalar(select(func.count()).select_from(Region)):
        return 0
    rows = region_rows()
    for level in (1, 2, 3):  # parents before children, for the self-referencing key
        session.execute(insert(Region), [r for r in rows if r["level"] == level])
    return len(rows)


@dataclass(frozen=True)
class ParsedAddress:
    province_code: int | None
    city_code: int | None
    district_code: int | None
    street: str


def parse_address(text: str) -> ParsedAddress:
    """Split a free-text address (山东省东营市垦利区胜利大街100号) into codes and street.

    Also understands partial addresses (河口区黄河路1号 -> 东营市 河口区).
    """
    import cpca  # builds a large automaton at import time: load it only when parsing

    frame = cpca.transform([text])
    row = frame.iloc[0]
    code = str(row.get("adcode") or "")
    district = int(code[:6]) if len(code) >= 6 and int(code[:6]) % 100 else None
    city = int(code[:4]) * 100 if len(code) >= 4 and int(code[:4]) % 100 else None
    province = int(code[:2]) * 10000 if len(code) >= 2 else None
    if province is None:  # nothing recognised: the text stays as it was
        return ParsedAddress(None, None, None, text)
    return ParsedAddress(province, city, district, str(row.get("地址") or "").strip())
