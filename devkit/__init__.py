"""The development kit of copy-ops: what the tests, the development host, the demo and
the benchmarks share. Development only: never deployed (see .funcignore).

* :class:`Azurite`: the storage emulator from the project's pinned npm install;
* :class:`PendingCopyProxy`: an HTTP proxy in front of Azurite that makes copies pending
  as Azure does, implements Abort Copy, counts and logs requests, injects faults and
  latency, and can make the blob index lag (``proxy.index``);
* :func:`http_call`: one HTTP request, an error status being an answer too;
* :mod:`devkit.app`: the function app loaded as the host loads it, its functions by
  name, and ``func.HttpRequest`` objects to call them with.
"""

from devkit.azurite import PROJECT_ROOT, Azurite, free_port, wait_for_port
from devkit.http_client import Reply, http_call
from devkit.index_lag import LaggingIndex
from devkit.proxy import (
    CONTROL_PREFIX,
    DEV_ACCOUNT,
    DEV_KEY,
    PARTNER_ACCOUNT,
    PARTNER_KEY,
    FakeCopy,
    PendingCopyProxy,
    account_sas,
    connection_string,
    serve,
)

__all__ = [
    "CONTROL_PREFIX",
    "DEV_ACCOUNT",
    "DEV_KEY",
    "PROJECT_ROOT",
    "Azurite",
    "PARTNER_ACCOUNT",
    "PARTNER_KEY",
    "FakeCopy",
    "LaggingIndex",
    "PendingCopyProxy",
    "Reply",
    "account_sas",
    "connection_string",
    "free_port",
    "http_call",
    "serve",
    "wait_for_port",
]
