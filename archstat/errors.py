"""The one exception type archstat raises for user errors.

The library raises :class:`ArchstatError` for anything the user can fix (an unknown
model, a malformed shape, an input too small for the network); only the CLI turns it
into a one-line message and exit code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ArchstatError(Exception):
    """A user error: bad model name, bad shape, bad option. Its message is one line."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean: a, b?)' suffix for an error message, or '' if nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f" (did you mean: {', '.join(close)}?)" if close else ""
