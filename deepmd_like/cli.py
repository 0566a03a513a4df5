"""The ``dpl`` command-line tool.

This module only parses arguments and hands them to library functions; each
subcommand lives in :mod:`deepmd_like.commands` as a module with a
``register(subparsers)`` function that adds its parser and sets ``func``.

Exit status: 0 success, 2 bad input from the user (one line on stderr),
1 an internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Subcommand modules, in the order ``dpl --help`` lists them.
_COMMANDS = ("data", "train", "test", "freeze", "md", "label", "explore", "vmc")


def _configure_threads() -> None:
    # Busy-waiting OpenMP threads were measured several times slower on a
    # shared two-core machine; passive waiting costs nothing when idle.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def build_parser() -> argparse.ArgumentParser:
    """Return the root parser with every available subcommand registered."""
    from deepmd_like import __version__

    parser = argparse.ArgumentParser(
        prog="dpl",
        description="deepmd-like: datasets, potentials, MD and neural wavefunctions",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"deepmd_like.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"deepmd_like.commands.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``dpl`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    _configure_threads()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Debug output is for this package; libraries stay at warnings.
    for noisy in ("h5py", "matplotlib", "PIL", "numba", "pyscf"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2

    from deepmd_like.errors import UserError

    try:
        result = args.func(args)
        sys.stdout.flush()
    except UserError as err:
        message = " ".join(str(err).split())
        print(f"dpl {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dpl {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output (e.g. `| head`) went away: not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
