"""python -m devkit proxy --azurite-port N: the pending-copy proxy as a process of its own
(for benchmarks: its work must not share the measured client's interpreter lock).

python -m devkit standin --azurite-port N [--port 10000] [--rate BYTES]: the same proxy as
the local stand-in of Azure that ``make run`` puts in front of Azurite.

python -m devkit issuer [--port N]: the local token issuer (devkit/issuer.py) on its own.

python -m devkit tokens [--issuer URL] [--caller NAME]: the named callers' bearer tokens, from
a running issuer (by default the development host's, on the port above its own).

python -m devkit policy: the COPY_POLICY make run gives the named callers, as JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading

from devkit.http_client import http_call
from devkit.issuer import CALLERS, DEFAULT_AUDIENCE, LOCAL_POLICY, LocalIssuer
from devkit.pacing import DEFAULT_RATE, Pacing
from devkit.proxy import PendingCopyProxy, serve

# The development host's own issuer, when it runs one: on the port above its 7071.
DEFAULT_ISSUER = "http://127.0.0.1:7072"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    proxy = commands.add_parser("proxy", help="the pending-copy proxy in front of Azurite")
    proxy.add_argument("--azurite-port", type=int, required=True)
    proxy.add_argument("--latency-ms", type=float, default=0.0)
    proxy.add_argument(
        "--pending", action="store_true", help="answer Copy Blob from another account as pending from the start"
    )
    standin = commands.add_parser("standin", help="the local stand-in of Azure in front of Azurite (make run)")
    standin.add_argument("--azurite-port", type=int, required=True, help="Azurite's blob service")
    standin.add_argument("--port", type=int, default=10000, help="where the stand-in listens (default 10000)")
    moves = f"bytes a second a copy from another account moves (default {DEFAULT_RATE})"
    standin.add_argument("--rate", type=float, default=DEFAULT_RATE, help=moves)
    issuer = commands.add_parser("issuer", help="the local token issuer: JWKS, and tokens for named callers")
    issuer.add_argument("--port", type=int, default=0, help="where it listens (default: a free port)")
    tokens = commands.add_parser("tokens", help="print the named callers' bearer tokens, from a running issuer")
    tokens.add_argument("--issuer", default=os.environ.get("DEVHOST_AUTH_ISSUER") or DEFAULT_ISSUER)
    tokens.add_argument("--audience", default=os.environ.get("DEVHOST_AUTH_AUDIENCE") or DEFAULT_AUDIENCE)
    tokens.add_argument("--caller", choices=sorted(CALLERS), help="only this caller's token, alone on its line")
    commands.add_parser("policy", help="the COPY_POLICY make run gives the named callers (JSON)")
    args = parser.parse_args(argv)
    if args.command == "policy":
        print(json.dumps(LOCAL_POLICY))
        return 0
    if args.command == "tokens":
        return print_tokens(args.issuer, args.audience, args.caller)
    if args.command == "issuer":
        with LocalIssuer(args.port) as running:
            print(f"issuer {running.url}", flush=True)
            print(f"listening {running.port}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
        return 0
    if args.command == "standin":
        server = PendingCopyProxy(args.azurite_port, port=args.port)
        server.index.keep_history = False
        seeded = server.seed_index()
        server.start().pace(Pacing(rate=args.rate))
        print(f"stand-in of Azure on 127.0.0.1:{server.port} ({seeded} tagged blobs indexed)", flush=True)
    else:
        server = serve(args.azurite_port, latency=args.latency_ms / 1000, pending=args.pending)
    # The parent reads the port from this line.
    print(f"listening {server.port}", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


def print_tokens(issuer: str, audience: str, only: str | None) -> int:
    """Each named caller's token, one ``name token`` line each (who they are on stderr);
    with ``only``, that caller's token alone: ``export COPY_OPS_TOKEN=$(... --caller alice)``."""
    for name in [only] if only else sorted(CALLERS):
        try:
            reply = http_call(f"{issuer.rstrip('/')}/token", "POST", {"caller": name, "audience": audience})
        except OSError as error:
            print(
                f"no issuer answers at {issuer}: {error} (start the development host with COPY_AUTH=entra)",
                file=sys.stderr,
            )
            return 1
        if reply.status != 200:
            print(f"the issuer at {issuer} refused a token for {name}: {reply.status}", file=sys.stderr)
            return 1
        token = reply.json()["access_token"]
        caller = CALLERS[name]
        if only:
            print(token)
            continue
        roles = " ".join(caller.roles)
        print(f"# {name} ({caller.display}): object id {caller.object_id}, roles {roles}", file=sys.stderr)
        print(f"{name} {token}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
