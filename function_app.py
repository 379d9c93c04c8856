"""Azure Functions entry point (Python v2 programming model): wiring only.

Each function hands its trigger's input to an adapter of :mod:`copy_ops` (``http``
and ``http_jobs`` for HTTP, ``triggers`` for the rest) and returns what it gives back;
``http_callers`` says the HTTP functions' auth level, by ``COPY_AUTH``.
Every function is ``async def``: the worker awaits it on its own event loop, where the
storage SDK's async clients run (see docs/design.md, "How the app runs on the worker").
"""

import azure.functions as func

from copy_ops.edges import http, http_callers, http_jobs, triggers

# FUNCTION (a key) unless COPY_AUTH is entra: then App Service Authentication admits callers.
app = func.FunctionApp(http_auth_level=http_callers.auth_level())


@app.route(route="copies", methods=["POST"])
async def start_copy(req: func.HttpRequest) -> func.HttpResponse:
    return await http.start_copy(req)


@app.route(route="copies", methods=["GET"])
async def list_copies(req: func.HttpRequest) -> func.HttpResponse:
    return await http.list_copies(req)


@app.route(route="copies/{id}", methods=["GET"])
async def get_copy(req: func.HttpRequest) -> func.HttpResponse:
    return await http.get_copy(req)


@app.route(route="copies/{id}/abort", methods=["POST"])
async def abort_copy(req: func.HttpRequest) -> func.HttpResponse:
    return await http.abort_copy(req)


@app.route(route="jobs", methods=["POST"])
async def start_job(req: func.HttpRequest) -> func.HttpResponse:
    return await http_jobs.start_job(req)


@app.route(route="jobs", methods=["GET"])
async def list_jobs(req: func.HttpRequest) -> func.HttpResponse:
    return await http_jobs.list_jobs(req)


@app.route(route="jobs/{id}", methods=["GET"])
async def get_job(req: func.HttpRequest) -> func.HttpResponse:
    return await http_jobs.get_job(req)


@app.route(route="jobs/{id}/items", methods=["GET"])
async def job_items(req: func.HttpRequest) -> func.HttpResponse:
    return await http_jobs.job_items(req)


@app.route(route="jobs/{id}/abort", methods=["POST"])
async def abort_job(req: func.HttpRequest) -> func.HttpResponse:
    return await http_jobs.abort_job(req)


@app.route(route="jobs/{id}/retry", methods=["POST"])
async def retry_job(req: func.HttpRequest) -> func.HttpResponse:
    return await http_jobs.retry_job(req)


@app.route(route="jobs/{id}/report", methods=["GET"])
async def job_report(req: func.HttpRequest) -> func.HttpResponse:
    return await http_jobs.job_report(req)


@app.route(route="whoami", methods=["GET"])
async def whoami(req: func.HttpRequest) -> func.HttpResponse:
    return await http.whoami(req)


@app.route(route="openapi.json", methods=["GET"])
async def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return await http.openapi(req)


@app.timer_trigger(schedule=triggers.sweep_schedule(), arg_name="timer", run_on_startup=False)
async def sweep(timer: func.TimerRequest) -> None:
    await triggers.sweep(timer)


@app.queue_trigger(arg_name="message", queue_name=triggers.work_queue(), connection=triggers.work_connection())
async def work(message: func.QueueMessage) -> None:
    await triggers.work(message)


@app.queue_trigger(arg_name="message", queue_name=triggers.poison_queue(), connection=triggers.work_connection())
async def work_poisoned(message: func.QueueMessage) -> None:
    await triggers.poisoned(message)
