"""python -m devkit.worker_index [APP_DIR]: index the function app with the real Python worker.

On Python 3.13 and later, Azure Functions runs Python functions with the worker library
``azure-functions-runtime``: the host's proxy worker hands it the generated gRPC message
classes (``protos``) and asks it for the app's function metadata. This runs exactly that
part of the real library (``handle_event.load_function_metadata``: importing
``function_app.py``, finding the ``FunctionApp``, validating every function against its
bindings in the worker's registry, building the binding infos, and taking the raw bindings
the host receives) with a stand-in for the message classes, which only records what it is
given. It prints the metadata as JSON: what the host would receive.

Run it with the Python 3.13 environment that ``scripts/setup.sh`` makes (``.venv313``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


class Message:
    """A stand-in of a generated gRPC message: its fields, as given."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def WhichOneof(self, group: str) -> str | None:  # protobuf's name
        """The one field set (a TypedData's value, a ParameterBinding's data)."""
        return next((name for name in self.__dict__ if name != "name"), None)


class BindingInfo(Message):
    # The values of the worker protocol's BindingInfo.Direction and BindingInfo.DataType.
    out, inout = 1, 2
    undefined, string, binary, stream = 0, 1, 2, 3


setattr(BindingInfo, "in", 0)  # "in" is a keyword: the generated code has it so too


class Protos:
    """Any message class the worker asks for: a recording stand-in."""

    BindingInfo = BindingInfo

    def __getattr__(self, name: str) -> type[Message]:
        return type(name, (Message,), {})


def load(app_dir: Path) -> list[Any]:
    """The app indexed by the real library, as on the worker's init and metadata requests:
    the metadata the host receives (each function's id among it)."""
    from azure_functions_runtime import handle_event

    sys.path.insert(0, str(app_dir))
    os.chdir(app_dir)
    handle_event.protos = Protos()
    handle_event.load_binding_registry()  # as the worker does on its init request
    handle_event.load_function_metadata(str(app_dir), caller_info="copy-ops index check")
    return list(handle_event._metadata_result or [])


def is_async(function_id: str) -> bool:
    """Whether the worker will await the function on its event loop (its registry's own
    ``is_async``: ``inspect.iscoroutinefunction`` of the user function), not run it in its
    thread pool."""
    from azure_functions_runtime import handle_event

    return bool(handle_event._functions.get_function(function_id).is_async)


def index(app_dir: Path) -> list[dict[str, Any]]:
    results = load(app_dir)
    return [
        {
            "name": meta.name,
            "entry_point": meta.entry_point,
            "script_file": meta.script_file,
            "language": meta.language,
            "bindings": {
                name: {"type": info.type, "direction": _number(info.direction), "data_type": _number(info.data_type)}
                for name, info in meta.bindings.items()
            },
            "raw_bindings": [json.loads(raw) for raw in meta.raw_bindings],
            "properties": dict(meta.properties),
            "is_async": is_async(meta.function_id),
        }
        for meta in results
    ]


def _number(value: Any) -> int | None:
    # The SDK gives enums, or None where a binding leaves the data type unset.
    return None if value is None else int(value)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    app_dir = Path(args[0] if args else ".").resolve()
    print(json.dumps(index(app_dir), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
