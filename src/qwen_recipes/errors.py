"""User errors: one exception family, printed as a message with no traceback. Every other exception is a bug.

A `UserError` says what is wrong with the user's input (recipe, data, folder, command line) and how to fix it.
Commands catch only this family; anything else keeps its traceback, wherever it was raised.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any


class UserError(Exception):
    """Bad input from the user; the message names the file/key/value and the fix. `label` heads the printout."""

    label = "error"

    def lines(self) -> list[str]:
        """The message as lines (one problem each)."""
        return str(self).splitlines() or [type(self).__name__]


def report_user_error(e: UserError, prog: str | None = None) -> None:
    """Print a user error to stderr: a heading and the indented problems."""
    head = f"{prog}: {e.label}" if prog else e.label
    print(f"{head}:\n" + "\n".join(f"  {line}" for line in e.lines()), file=sys.stderr)


def user_errors(func: Callable[..., int] | None = None, *, prog: str | None = None, code: int = 2) -> Any:
    """Decorate a command: a `UserError` is printed without a traceback and returns `code`; bugs propagate."""

    def wrap(f: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> int:
            try:
                return f(*args, **kwargs)
            except UserError as e:
                report_user_error(e, prog)
                return code

        return wrapper

    return wrap(func) if func is not None else wrap
