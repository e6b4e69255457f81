"""The project's exceptions: every bad input names what was wrong and the valid choices."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["SymlossError", "SymlossTypeError", "SymlossValueError", "UnknownLossError"]


class SymlossError(Exception):
    """Base class of every error symloss raises on bad input."""


class SymlossValueError(SymlossError, ValueError):
    """A value is out of its valid range or set."""


class SymlossTypeError(SymlossError, TypeError):
    """A value has the wrong type or shape kind."""


class UnknownLossError(SymlossValueError, KeyError):
    """A loss name symloss does not know; the message lists the names and the closest one."""

    def __init__(self, name: str, valid: Iterable[str], suggestion: str | None = None) -> None:
        valid = sorted(valid)
        close = [suggestion] if suggestion else difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown loss {name!r}.{hint} Valid names: {', '.join(valid)}")
        self.name = name
        self.valid = valid
        self.suggestion = close[0] if close else None

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def choice_error(what: str, value: object, valid: Iterable[object]) -> SymlossValueError:
    """``SymlossValueError`` for ``value`` not among ``valid``."""
    shown = ", ".join(repr(v) for v in valid)
    return SymlossValueError(f"invalid {what} {value!r}; valid values: {shown}")
