"""Azure Functions entry point (Python v2 programming model): wiring only.

Each function hands its trigger to :mod:`copy_ops`, which parses it, does the work
and maps the result; settings, storage and business rules all live in the package.
"""

import logging

import azure.functions as func

from copy_ops import http, runtime

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
logger = logging.getLogger(__name__)


@app.route(route="copies", methods=["POST"])
def start_copy(req: func.HttpRequest) -> func.HttpResponse:
    return http.start_copy(req)


@app.route(route="copies", methods=["GET"])
def list_copies(req: func.HttpRequest) -> func.HttpResponse:
    return http.list_copies(req)


@app.route(route="copies/{id}", methods=["GET"])
def get_copy(req: func.HttpRequest) -> func.HttpResponse:
    return http.get_copy(req)


@app.route(route="copies/{id}/abort", methods=["POST"])
def abort_copy(req: func.HttpRequest) -> func.HttpResponse:
    return http.abort_copy(req)


@app.route(route="openapi.json", methods=["GET"])
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return http.openapi(req)


# The schedule comes from COPY_SWEEP_SCHEDULE through the settings object, so an
# unset setting means the documented default instead of a host indexing error.
@app.timer_trigger(schedule=runtime.settings().sweep_schedule, arg_name="timer", run_on_startup=False)
def sweep(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logger.warning("sweep_past_due")
    runtime.run_sweep()
