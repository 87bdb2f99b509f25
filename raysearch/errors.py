"""UserError: a problem with the user's input, told in one line.

The lowest layer: every module may raise it, and the CLI (cli.py) prints its message as one line
(plus the listed details, if any) and exits with status 2, without a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (a file, a value, an option).

    The message must name the file or value and what was expected.
    """


def first_line(error: BaseException, limit: int = 200) -> str:
    """An exception said in one line (its first, cut to `limit`; its type's name when empty):
    what a one-line error quotes of a library's own message."""
    text = str(error).strip()
    return (text.splitlines() or [type(error).__name__])[0][:limit]
