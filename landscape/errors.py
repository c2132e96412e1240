"""One exception type for problems the user can fix.

The CLI prints a `LandscapeError` as a single line and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class LandscapeError(ValueError):
    """Bad input or environment: the message says what is wrong and what to do."""


class EchoedError(LandscapeError):
    """Under MPI, another rank's error raised on this rank so that it stops too. Rank 0 prints the
    message; the CLI prints nothing for an echo, so a refusal is one line, not one per rank."""
