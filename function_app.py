"""Azure Functions entry point (Python v2 programming model): wiring only.

Each function parses its trigger, calls :mod:`copy_ops`, and maps the result to the
trigger's output. Business rules, settings and storage live in the package.
"""

import logging

import azure.functions as func

from copy_ops import runtime

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
logger = logging.getLogger(__name__)


# The schedule comes from COPY_SWEEP_SCHEDULE through the settings object, so an
# unset setting means the documented default instead of a host indexing error.
@app.timer_trigger(schedule=runtime.settings().sweep_schedule, arg_name="timer", run_on_startup=False)
def sweep(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logger.warning("sweep_past_due")
    runtime.run_sweep()
