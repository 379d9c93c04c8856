"""Azure Functions entry point (Python v2 programming model): wiring only.

Each function hands its trigger's input to an adapter of :mod:`copy_ops` (``http``
and ``http_jobs`` for HTTP, ``triggers`` for the rest) and returns what it gives back.
"""

import azure.functions as func

from copy_ops import http, http_jobs, triggers

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


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


@app.route(route="jobs", methods=["POST"])
def start_job(req: func.HttpRequest) -> func.HttpResponse:
    return http_jobs.start_job(req)


@app.route(route="jobs", methods=["GET"])
def list_jobs(req: func.HttpRequest) -> func.HttpResponse:
    return http_jobs.list_jobs(req)


@app.route(route="jobs/{id}", methods=["GET"])
def get_job(req: func.HttpRequest) -> func.HttpResponse:
    return http_jobs.get_job(req)


@app.route(route="jobs/{id}/items", methods=["GET"])
def job_items(req: func.HttpRequest) -> func.HttpResponse:
    return http_jobs.job_items(req)


@app.route(route="jobs/{id}/abort", methods=["POST"])
def abort_job(req: func.HttpRequest) -> func.HttpResponse:
    return http_jobs.abort_job(req)


@app.route(route="jobs/{id}/report", methods=["GET"])
def job_report(req: func.HttpRequest) -> func.HttpResponse:
    return http_jobs.job_report(req)


@app.route(route="openapi.json", methods=["GET"])
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return http.openapi(req)


@app.timer_trigger(schedule=triggers.sweep_schedule(), arg_name="timer", run_on_startup=False)
def sweep(timer: func.TimerRequest) -> None:
    triggers.sweep(timer)


@app.queue_trigger(arg_name="message", queue_name=triggers.work_queue(), connection=triggers.work_connection())
def work(message: func.QueueMessage) -> None:
    triggers.work(message)
