"""Where the grammar, templates and C runtime live.

In an installed wheel they are sub-packages of rulec (`rulec/grammar`, ...);
in a source checkout they sit beside the package (`grammar/`, ...). Both
layouts are looked up, the installed one first.
"""

from __future__ import annotations

import functools
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The directory of `grammar`, `templates` or `runtime`."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"rulec's {name}/ directory is missing next to {_PACKAGE}; reinstall rulec"
    )


@functools.cache
def grammar_text() -> str:
    return (resource_dir("grammar") / "rule.lark").read_text(encoding="utf-8")
