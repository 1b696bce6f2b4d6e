"""A pybabel extractor for KeGuan's models: Babel's own Python one, plus the labels of `Choices`.

`Choices(("company", "企业"), ("individual", "个人"))` translates its labels with lazy_gettext
at run time, but Babel's Python extractor only reads string literals given directly to a
keyword call, never ones nested in tuples, so those labels would be missing from the
catalogues (and `pybabel update` would drop them as obsolete). This extractor reads them with
`ast`: the second item of every literal (code, label) pair passed to a call named `Choices`.

Used by babel.cfg as `choices_extractor:extract`; it imports nothing from KeGuan (importing the
`app` package would load the settings), so pybabel needs this folder on its path:

    PYTHONPATH=app/translations .venv/bin/pybabel extract -F babel.cfg ...
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from typing import IO, Any

from babel.messages.extract import extract_python


def _choice_labels(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name != "Choices":
            continue
        for arg in node.args:
            if (
                isinstance(arg, ast.Tuple)
                and len(arg.elts) == 2
                and isinstance(arg.elts[1], ast.Constant)
                and isinstance(arg.elts[1].value, str)
            ):
                yield arg.elts[1].lineno, arg.elts[1].value


def extract(
    fileobj: IO[bytes],
    keywords: Collection[str],
    comment_tags: Collection[str],
    options: dict[str, Any],
) -> Iterator[tuple[int, str | None, str, list[str]]]:
    """Everything Babel's Python extractor finds, then the `Choices` labels."""
    yield from extract_python(fileobj, keywords, comment_tags, options)
    fileobj.seek(0)
    source = fileobj.read().decode(options.get("encoding", "utf-8"))
    for lineno, label in sorted(_choice_labels(ast.parse(source))):
        yield lineno, None, label, []
