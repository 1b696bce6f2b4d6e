"""Attachments of file fields, stored outside the database: `<root>/<id[:2]>/<id>` plus a small
JSON description beside it. The database keeps only the description (id, name, size, type).

A file is checked when it arrives: an allowed extension for the field, within its size limit,
and content that matches the extension for the common formats (a renamed executable is refused).
"""

from __future__ import annotations

import json
import mimetypes
import re
import secrets
from pathlib import Path
from typing import IO, Any

from flask_babel import gettext as _

from customfields.definitions import CustomField

FILE_ID = re.compile(r"[0-9a-f]{32}")
#: leading bytes of formats whose content is checked against the extension
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "pdf": (b"%PDF-",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpg": (b"\xff\xd8\xff",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "zip": (b"PK\x03\x04", b"PK\x05\x06"),
    "docx": (b"PK\x03\x04",),
    "xlsx": (b"PK\x03\x04",),
    "doc": (b"\xd0\xcf\x11\xe0",),
    "xls": (b"\xd0\xcf\x11\xe0",),
}
#: never accepted whatever the extension says: Windows and Linux executables, scripts
EXECUTABLE = (b"MZ", b"\x7fELF", b"#!")
CHUNK = 64 * 1024


class FileStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, file_id: str) -> Path | None:
        if not FILE_ID.fullmatch(file_id or ""):
            return None
        return self.root / file_id[:2] / file_id

    def describe(self, file_id: str) -> dict[str, Any] | None:
        """The stored description of an uploaded file, None if there is no such file."""
        path = self.path(file_id)
        if path is None or not path.exists():
            return None
        return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))

    def save(self, stream: IO[bytes], filename: str, field: CustomField) -> dict[str, Any]:
        """Store an upload for `field`; ValueError with a message when the file is refused."""
        name = Path(filename or "").name.strip()[:200]
        extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if extension not in field.allowed_file_types:
            raise ValueError(
                _("不允许的文件类型,可上传: %(types)s", types=", ".join(field.allowed_file_types))
            )
        file_id = secrets.token_hex(16)
        path = self.path(file_id)
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        size, head = 0, b""
        try:
            with path.open("wb") as out:
                while chunk := stream.read(CHUNK):
                    if not head:
                        head = chunk[:16]
                    size += len(chunk)
                    if size > field.max_file_bytes:
                        raise ValueError(_("文件超过 %(n)s MB", n=field.max_file_bytes // (1024 * 1024)))
                    out.write(chunk)
            if size == 0:
                raise ValueError(_("文件是空的"))
            if head.startswith(EXECUTABLE) or (
                extension in SIGNATURES and not head.startswith(SIGNATURES[extension])
            ):
                raise ValueError(_("文件内容与扩展名 .%(ext)s 不符", ext=extension))
        except ValueError:
            path.unlink(missing_ok=True)
            raise
        meta = {
            "id": file_id,
            "name": name,
            "size": size,
            "type": mimetypes.guess_type(name)[0] or "application/octet-stream",
            "entity": field.entity,
            "field": field.api_name,
        }
        path.with_suffix(".json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        return meta
