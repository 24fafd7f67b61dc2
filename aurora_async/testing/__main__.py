"""``python -m aurora_async.testing up``: start a simulated cluster and keep it up until Ctrl-C (with
``--data-api``, also the RDS Data API emulator in front of it)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from contextlib import AsyncExitStack

from ._catalog import TOPOLOGY_MODES
from .data_api._emulator import DataApiEmulator
from .simulator._failover import FailoverDelays
from .simulator._simulator import AuroraSimulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aurora_async.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start a simulated cluster and wait until Ctrl-C")
    up.add_argument("--engine", default="postgresql", choices=["postgresql", "mysql"])
    up.add_argument("--instances", type=int, default=3)
    up.add_argument("--topology", default="aurora", choices=TOPOLOGY_MODES)
    up.add_argument("--dns-delay", type=float, default=3.0, help="seconds (default 3)")
    up.add_argument("--port", type=int, default=None, help="client port of every endpoint")
    up.add_argument("--address-prefix", default="127.0.42.")
    up.add_argument("--user", default=None, help="default: postgres, or admin for mysql")
    up.add_argument("--database", default=None, help="default: postgres, or app for mysql")
    up.add_argument(
        "--data-api", action="store_true", help="also serve the RDS Data API (rds-data) on 127.0.0.1"
    )
    return parser


def describe(sim: AuroraSimulator) -> str:
    lines = [
        f"writer endpoint   {sim.cluster_endpoint}   {sim.dsn('cluster')}",
        f"reader endpoint   {sim.reader_endpoint}   {sim.dsn('reader')}",
        f"host pattern      {sim.instance_host_pattern}   (cluster_instance_host_pattern)",
        f"data and logs     {sim.root}",
        "instances:",
    ]
    for state in sim.instances.values():
        lines.append(
            f"  {state.instance_id:>4}  {state.role:<6}  {state.endpoint:<22}  {sim.dsn(state.instance_id)}"
        )
    return "\n".join(lines)


def describe_data_api(emulator: DataApiEmulator) -> str:
    return "\n".join(
        [
            f"data api endpoint  {emulator.endpoint_url}",
            f"data api resource  {emulator.resource_arn}",
            f"data api secret    {emulator.secret_arn}",
        ]
    )


async def _up(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(
            AuroraSimulator(
                args.engine,
                args.instances,
                topology=args.topology,
                dns_delay=args.dns_delay,
                delays=FailoverDelays(),
                port=args.port,
                address_prefix=args.address_prefix,
                user=args.user,
                database=args.database,
            )
        )
        print(describe(sim))
        if args.data_api:
            print(describe_data_api(await stack.enter_async_context(DataApiEmulator(sim))))
        print(f"ready: {sim.timeline[0].detail}. Press Ctrl-C to stop.", flush=True)
        await stop.wait()
    print("stopped; everything was removed", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_up(args))
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
