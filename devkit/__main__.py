"""python -m devkit proxy --azurite-port N: the pending-copy proxy as a process of its own
(for benchmarks: its work must not share the measured client's interpreter lock)."""

from __future__ import annotations

import argparse
import sys

from devkit.proxy import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    proxy = commands.add_parser("proxy", help="the pending-copy proxy in front of Azurite")
    proxy.add_argument("--azurite-port", type=int, required=True)
    proxy.add_argument("--latency-ms", type=float, default=0.0)
    proxy.add_argument("--pending", action="store_true", help="answer Copy Blob as pending from the start")
    args = parser.parse_args(argv)
    server = serve(args.azurite_port, latency=args.latency_ms / 1000, pending=args.pending)
    # The parent reads the port from this line.
    print(f"listening {server.port}", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
