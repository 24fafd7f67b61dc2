"""``python -m aurora_async <command>``: ``doctor`` checks what the library sees of a cluster."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .doctor._cli import add_arguments, run


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch the subcommand; 2 for a usage error, else the subcommand's exit status."""
    parser = argparse.ArgumentParser(prog="python -m aurora_async")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    doctor = commands.add_parser(
        "doctor",
        help="check what aurora_async sees of a cluster, and what would go wrong",
        description="Check what aurora_async sees of a cluster, and what would go wrong.",
    )
    add_arguments(doctor)
    args = parser.parse_args(argv)
    return run(args, doctor)


if __name__ == "__main__":
    sys.exit(main())
