"""One invalid .rule file per checker rule (tests/invalid/), each naming the error
code, line and column it must produce in its first line (`# expect: CODE L:C`),
and valid files (tests/valid/ and examples/) that must check cleanly."""

from __future__ import annotations

import re

import pytest

import rulec
from rulec.frontend import load_program

from .conftest import EXAMPLES, TESTS

INVALID = sorted((TESTS / "invalid").glob("*.rule"))
VALID = sorted((TESTS / "valid").glob("*.rule")) + sorted(EXAMPLES.glob("*.rule"))


def expectation(path):
    header = path.read_bytes().split(b"\n", 1)[0].decode()
    match = re.fullmatch(r"# expect: (E\d{3}) (\d+):(\d+)", header.strip())
    assert match, f"{path.name} must start with '# expect: CODE LINE:COL'"
    return match.group(1), int(match.group(2)), int(match.group(3))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_file_reports_its_error_at_its_position(path):
    code, line, column = expectation(path)
    assert path.stem.startswith(code), "file names start with the code they test"
    with pytest.raises(rulec.RuleErrors) as info:
        load_program(path.read_bytes(), path.name)
    first = info.value.errors[0]
    assert (first.code, first.span.line, first.span.column) == (code, line, column), str(info.value)
    rendered = str(info.value)
    assert f"{path.name}:{line}:{column}: error[{code}]" in rendered
    assert "^" in rendered


def test_every_error_code_in_docs_has_an_invalid_file():
    from .conftest import ROOT

    documented = set(re.findall(r"^## (E\d{3})", (ROOT / "docs" / "errors.md").read_text(),
                                re.MULTILINE))
    tested = {p.stem[:4] for p in INVALID}
    assert documented == tested


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_file_checks(path):
    load_program(path.read_bytes(), path.name)
