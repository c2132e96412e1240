"""Command line: ``landscape COMMAND ...``, a thin layer over the library.

Each command lives in its own module here with ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; library imports happen inside ``run`` so ``--help`` is instant. A
`LandscapeError` (bad input) becomes one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from typing import Sequence

# Order is the order shown by --help.
COMMANDS = ["demo", "train", "track", "plot", "surface", "render", "view", "hessian", "sharpness", "sweep",
            "report", "figures", "bench", "info"]


def _available_commands() -> list[str]:
    here = os.path.dirname(__file__)
    return [c for c in COMMANDS if os.path.exists(os.path.join(here, f"{c}.py"))]


class LandscapeParser(argparse.ArgumentParser):
    """Reads ``--x -1:1:51`` as a value: argparse alone takes ``-1:1:51`` for an option."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\d*\.?\d+([eE][-+]?\d+)?(:[-+]?[\d.eE+-]*)*$")

    def error(self, message: str):
        """One line (argparse prints the whole usage block first): what is wrong, and where the help is.
        Under mpirun only rank 0 says it: every rank parses the same command line the same way."""
        from ..parallel import launch_rank

        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n" if launch_rank() == 0 else None)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = LandscapeParser(
        prog="landscape",
        description="Loss-landscape and sharpness analysis: filter-normalized plots, Hessian spectra, "
                    "sharpness measures and batch-size studies.")
    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _available_commands():
        module = importlib.import_module(f".{name}", __name__)
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def flag_message(message: str, args: argparse.Namespace) -> str:
    """A library error names parameters (``rtol must be positive``); on the command line it names the
    flag that sets it (``--rtol must be positive``) when the command has one of that name."""
    first, _, rest = message.partition(" ")
    if first.isidentifier() and first in vars(args) and not first.startswith("_") and rest:
        return f"--{first.replace('_', '-')} {rest}"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    from ..errors import EchoedError, LandscapeError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except LandscapeError as e:
        if not isinstance(e, EchoedError):  # under MPI, an echo of what rank 0 prints
            print(f"landscape {args.command}: error: {flag_message(str(e), args)}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"landscape {args.command}: error: no such file: {e.filename or e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno is None:  # not the system's answer about a path: a bug, keep its traceback
            raise
        where = f" ({e.filename})" if e.filename else ""
        print(f"landscape {args.command}: error: {e.strerror or e}{where}; check the path, its permissions and the "
              "free space, then rerun the same command (finished work is kept)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"landscape {args.command}: interrupted; finished work is saved, rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
