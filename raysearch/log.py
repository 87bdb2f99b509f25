"""Where the library's messages go. Every module logs to `logging.getLogger(__name__)` (under
"raysearch"); the command line shows them on stderr as plain lines, and so does the Python API
unless the program configured logging itself. Silence them with
`logging.getLogger("raysearch").setLevel(logging.ERROR)`. The console's progress view (the search's
table, tqdm bars) is not a message and is not logged."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

LOGGER = "raysearch"


class _Stderr(logging.StreamHandler):
    """A handler writing to the sys.stderr of the moment (a redirection made later included)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


@contextmanager
def messages_on_stderr(only_if_unconfigured: bool = False) -> Iterator[None]:
    """Show raysearch's messages (INFO and up) on stderr, one plain line each, while the block runs.
    With `only_if_unconfigured` (the API), a program that configured logging keeps its own handlers."""
    logger = logging.getLogger(LOGGER)
    configured = logging.getLogger().handlers or logger.handlers
    if any(isinstance(h, _Stderr) for h in logger.handlers) or (only_if_unconfigured and configured):
        yield
        return
    handler, before = _Stderr(), (logger.level, logger.propagate)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False  # a root handler would print each line twice
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before[0])
        logger.propagate = before[1]
