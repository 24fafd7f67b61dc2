"""The command line: ``python -m aurora_async doctor DSN ...`` and the ``aurora-async-doctor`` script."""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from collections.abc import Sequence
from typing import Any

from ._diagnosis import diagnose

USAGE_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The doctor's arguments (shared by ``python -m aurora_async doctor`` and the console script)."""
    parser.add_argument(
        "dsn", help="postgresql://user@host:port/db or mysql://... (the password may be in it)"
    )
    parser.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an aurora_async option or driver argument, as connect() takes it (repeatable)",
    )
    parser.add_argument(
        "--ssl-ca", metavar="FILE", help="verify the server's certificate against this CA file"
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="deadline of each network step (s, default 5)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Diagnose what ``args`` say, print the report, and return the exit status (0 ok, 1 a failed check)."""
    options: dict[str, Any] = {}
    for item in args.option:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            parser.error(f"--option takes NAME=VALUE, not {item!r}")
        options[name.strip()] = value
    if args.ssl_ca is not None:
        try:
            options["ssl"] = ssl.create_default_context(cafile=args.ssl_ca)
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"--ssl-ca {args.ssl_ca!r}: {exc}")
    if not args.timeout > 0:
        parser.error("--timeout must be a positive number of seconds")
    report = asyncio.run(diagnose(args.dsn, timeout=args.timeout, **options))
    sys.stdout.write((report.to_json() if args.json else report.format_text()) + "\n")
    return report.exit_status


def main(argv: Sequence[str] | None = None) -> int:
    """The ``aurora-async-doctor`` console script."""
    parser = argparse.ArgumentParser(
        prog="aurora-async-doctor",
        description="Check what aurora_async sees of a cluster, and what would go wrong.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv), parser)


def console() -> None:
    """Entry point of the console script: exit with :func:`main`'s status."""
    sys.exit(main())
