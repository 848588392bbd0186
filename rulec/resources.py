"""Where the grammar, templates and C runtime live.

In an installed wheel they are sub-packages of rulec (`rulec/grammar`,
`rulec/templates`, and `rulec/include` for runtime/);
in a source checkout they sit beside the package (`grammar/`, ...). Both
layouts are looked up, the installed one first.
"""

from __future__ import annotations

import functools
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


#: where each resource directory is installed inside the package (the C
#: headers of runtime/ as rulec/include, beside the Python modules)
_INSTALLED = {"grammar": "grammar", "templates": "templates", "runtime": "include"}


def resource_dir(name: str) -> Path:
    """The directory of `grammar`, `templates` or `runtime`."""
    for candidate in (_PACKAGE / _INSTALLED[name], _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"rulec's {name}/ directory is missing next to {_PACKAGE}; reinstall rulec"
    )


@functools.cache
def grammar_text() -> str:
    return (resource_dir("grammar") / "rule.lark").read_text(encoding="utf-8")


@functools.cache
def templates():
    """The Jinja environment of templates/ (every rendered C file comes from it)."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
