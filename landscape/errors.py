"""One exception type for problems the user can fix.

The CLI prints a `LandscapeError` as a single line and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class LandscapeError(ValueError):
    """Bad input or environment: the message says what is wrong and what to do."""
