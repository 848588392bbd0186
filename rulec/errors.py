"""Positioned, user-facing errors.

Every problem rulec reports about a `.rule` file is a :class:`RuleError`: a
stable code (documented in docs/errors.md), a :class:`Span`, a message and an
optional hint. A file's errors travel together in :class:`RuleErrors`, which
renders them the way a compiler does::

    hebbian.rule:12:9: error[E301]: node slot 'x' needs a float, got vector
       12 |     x = w * nbr.x
          |         ^^^^^^^^^
      hint: reduce the vector first: sum(...), mean(...), max(...), min(...) or count(...)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .frozen import node


class RulecError(Exception):
    """The root of every error rulec reports to its users: RuleErrors (a rule
    file), BuildError, GraphError, GraphSpecError, StateError, ExportError,
    NonFiniteError. Catch this one class to catch them all; anything else
    escaping rulec is a bug."""


class RulecKeyError(RulecError, KeyError):
    """A name that is not there (a param, a slot, a block, a task): still a
    KeyError for callers that catch one, and printed as its message (a plain
    KeyError quotes it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RulecValueError(RulecError, ValueError):
    """A value out of range or of the wrong kind (steps, threads, a param's
    value, a seed, a protocol): still a ValueError for callers that catch one."""


class RulecTypeError(RulecError, TypeError):
    """An argument of the wrong type (a graph, a state, a seed): still a
    TypeError for callers that catch one."""


@node
class Span:
    """A region of source text: 1-based line and column, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int

    @staticmethod
    def point(line: int, column: int) -> Span:
        return Span(line, column, line, column + 1)


#: Lines longer than this are shown as a window around the error.
_MAX_SHOWN = 120

#: A span for things that have no place in the source (built-ins, generated IR).
NOWHERE = Span(0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class RuleError:
    """One problem in a rule file."""

    code: str
    span: Span
    message: str
    hint: str | None = None
    severity: str = "error"  # or "warning" (codes W...): the rule still compiles

    def render(self, filename: str, source: str) -> str:
        """Format as `file:line:col: error[CODE]: message`, the line, a caret and the hint."""
        span = self.span
        out = [f"{filename}:{span.line}:{span.column}: {self.severity}[{self.code}]: "
               f"{self.message}"]
        lines = source.splitlines()
        if 1 <= span.line <= len(lines):
            text = "".join(c if c.isprintable() else " " for c in lines[span.line - 1])
            number = str(span.line)
            gutter = " " * len(number)
            if span.end_line == span.line:
                width = max(1, span.end_column - span.column)
            else:
                width = max(1, len(text) - span.column + 1)
            start = span.column - 1
            if len(text) > _MAX_SHOWN:  # show a window of a very long line
                left = max(0, start - 40)
                text = "..." + text[left : left + _MAX_SHOWN - 6] + "..."
                start = start - left + 3
                width = min(width, _MAX_SHOWN - start)
            out.append(f" {number} | {text}")
            out.append(f" {gutter} | {' ' * start}{'^' * width}")
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)


@dataclass
class RuleErrors(RulecError):
    """All the errors of one file, sorted by position. Raised by the compiler."""

    filename: str
    source: str
    errors: list[RuleError] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.errors = sorted(self.errors, key=lambda e: (e.span.line, e.span.column, e.code))
        super().__init__(str(self))

    def __reduce__(self):
        # picklable (e.g. across a process pool): rebuild from the fields
        return (RuleErrors, (self.filename, self.source, self.errors))

    def __str__(self) -> str:
        rendered = [e.render(self.filename, self.source) for e in self.errors]
        count = len(self.errors)
        rendered.append(f"{count} error{'s' if count != 1 else ''} in {self.filename}")
        return "\n".join(rendered)

    @property
    def codes(self) -> list[str]:
        return [e.code for e in self.errors]


def did_you_mean(name: str, candidates: list[str] | set[str]) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None if nothing is close."""
    import difflib

    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


class RuleWarning(UserWarning):
    """A rule that compiles but probably does not do what its text says (a
    write that never lands, ...): the rendered warnings, as `rulec check`
    prints them."""
