from __future__ import annotations

import pytest

from copy_ops.core.connection import endpoint_of
from copy_ops.core.errors import ConfigurationError
from copy_ops.core.settings import Settings
from copy_ops.jobs import progress

KEY = "Zm9vYmFyYmF6cXV4c2VjcmV0a2V5MTIzNDU2Nzg5MA=="
AZURE_CS = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net"


def test_defaults_follow_the_spec() -> None:
    settings = Settings.from_env({"AzureWebJobsStorage": AZURE_CS})
    assert settings.sweep_schedule == "0 */1 * * * *"
    assert settings.default_timeout_seconds == 3600
    assert settings.max_timeout_seconds == 604800
    assert settings.ledger_container == "copy-operations"
    assert settings.allowed_source_hosts == ("acct.blob.core.windows.net",)
    assert settings.allowed_destination_containers == ("*",)
    assert settings.sweep_budget_seconds < 300  # below host.json's functionTimeout
    assert settings.sweep_concurrency == 32  # the measured best: docs/performance.md


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [
        ({"AzureWebJobsStorage": AZURE_CS}, "https://acct.blob.core.windows.net"),
        (
            {"COPY_STORAGE": "UseDevelopmentStorage=true", "AzureWebJobsStorage": AZURE_CS},
            "http://127.0.0.1:10000/devstoreaccount1",
        ),
        (
            {"COPY_STORAGE__blobServiceUri": "https://other.blob.core.windows.net/", "AzureWebJobsStorage": AZURE_CS},
            "https://other.blob.core.windows.net",
        ),
        # The host's own storage in its identity form, as the Flex Consumption templates set it.
        (
            {
                "AzureWebJobsStorage__blobServiceUri": "https://host.blob.core.windows.net",
                "AzureWebJobsStorage__credential": "managedidentity",
                "AzureWebJobsStorage__clientId": "cid",
            },
            "https://host.blob.core.windows.net",
        ),
        ({"AzureWebJobsStorage__accountName": "named"}, "https://named.blob.core.windows.net"),
        ({"COPY_STORAGE__accountName": "mine", "AzureWebJobsStorage": AZURE_CS}, "https://mine.blob.core.windows.net"),
        (
            {"COPY_STORAGE": f"AccountName=a;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:1/a/"},
            "http://127.0.0.1:1/a",
        ),
    ],
)
def test_storage_connection_precedence(env: dict[str, str], endpoint: str) -> None:
    assert Settings.from_env(env).storage.blob_endpoint == endpoint


def test_a_job_items_claim_is_at_most_its_default_and_at_least_the_shortest_sound_one() -> None:
    """COPY_JOB_ITEM_CLAIM_SECONDS: 30 s by default and at most (the jobs' timings above
    the claim were set for it), 10 s at least (progress.SHORTEST_ITEM_CLAIM says why)."""
    env = {"AzureWebJobsStorage": AZURE_CS}
    shortest, longest = (int(claim.total_seconds()) for claim in (progress.SHORTEST_ITEM_CLAIM, progress.ITEM_CLAIM))
    assert Settings.from_env(env).job_item_claim_seconds == longest
    for seconds in (shortest, longest):
        assert Settings.from_env({**env, "COPY_JOB_ITEM_CLAIM_SECONDS": str(seconds)}).job_item_claim_seconds == seconds
    for seconds in (shortest - 1, longest + 1):
        with pytest.raises(ConfigurationError) as caught:
            Settings.from_env({**env, "COPY_JOB_ITEM_CLAIM_SECONDS": str(seconds)})
        assert caught.value.code == "COPY_JOB_ITEM_CLAIM_SECONDS"


def test_identity_connection_keeps_client_id() -> None:
    settings = Settings.from_env(
        {"COPY_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net", "COPY_STORAGE__clientId": "abc"}
    )
    assert settings.storage.connection_string is None
    assert settings.storage.client_id == "abc"
    assert settings.storage.uses_identity


@pytest.mark.parametrize(
    ("env", "queue"),
    [
        ({"COPY_STORAGE": AZURE_CS}, "https://acct.queue.core.windows.net"),
        ({"COPY_STORAGE": "UseDevelopmentStorage=true"}, "http://127.0.0.1:10001/devstoreaccount1"),
        ({"COPY_STORAGE": f"AccountName=a;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:7/a"}, "http://127.0.0.1:8/a"),
        (
            {"AzureWebJobsStorage__blobServiceUri": "https://h.blob.core.windows.net"},
            "https://h.queue.core.windows.net",
        ),
        (
            {
                "AzureWebJobsStorage__blobServiceUri": "https://h.blob.core.windows.net",
                "AzureWebJobsStorage__queueServiceUri": "https://q.queue.core.windows.net/",
            },
            "https://q.queue.core.windows.net",
        ),
    ],
)
def test_the_queue_endpoint_of_each_form(env: dict[str, str], queue: str) -> None:
    assert Settings.from_env(env).storage.queue_endpoint == queue


@pytest.mark.parametrize(
    ("env", "schedule"),
    [
        ({}, "0 */1 * * * *"),
        ({"COPY_STORAGE": "nonsense", "COPY_SWEEP_SCHEDULE": "*/5 * * * * *"}, "*/5 * * * * *"),
        ({"COPY_SWEEP_SCHEDULE": "not a schedule"}, "0 */1 * * * *"),
    ],
)
def test_the_schedule_never_fails_indexing(env: dict[str, str], schedule: str) -> None:
    assert Settings.schedule_from_env(env) == schedule


def test_repr_never_shows_the_account_key() -> None:
    settings = Settings.from_env({"COPY_STORAGE": AZURE_CS})
    assert KEY not in repr(settings)
    assert KEY not in str(settings)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "COPY_STORAGE"),
        ({"COPY_STORAGE": "nonsense"}, "COPY_STORAGE"),
        ({"COPY_STORAGE__blobServiceUri": "not a url"}, "COPY_STORAGE__blobServiceUri"),
        ({"COPY_STORAGE__blobServiceUri": "http://acct.blob.core.windows.net"}, "COPY_STORAGE__blobServiceUri"),
        # Contradictions within a family: one error naming both.
        (
            {"COPY_STORAGE": AZURE_CS, "COPY_STORAGE__blobServiceUri": "https://a.blob.core.windows.net"},
            "COPY_STORAGE__blobServiceUri",
        ),
        (
            {
                "AzureWebJobsStorage__blobServiceUri": "https://a.blob.core.windows.net",
                "AzureWebJobsStorage__accountName": "a",
            },
            "AzureWebJobsStorage__accountName",
        ),
        ({"COPY_STORAGE": AZURE_CS, "COPY_STORAGE__clientId": "x"}, "COPY_STORAGE__clientId"),
        ({"COPY_STORAGE__clientId": "x"}, "COPY_STORAGE__blobServiceUri"),
        (
            {
                "AzureWebJobsStorage__blobServiceUri": "https://a.blob.core.windows.net",
                "AzureWebJobsStorage__credential": "secret",
            },
            "AzureWebJobsStorage__credential",
        ),
        ({"COPY_STORAGE": AZURE_CS, "COPY_SWEEP_SCHEDULE": "*/5 * * * *"}, "COPY_SWEEP_SCHEDULE"),
        ({"COPY_STORAGE": AZURE_CS, "COPY_DEFAULT_TIMEOUT_SECONDS": "ten"}, "COPY_DEFAULT_TIMEOUT_SECONDS"),
        ({"COPY_STORAGE": AZURE_CS, "COPY_DEFAULT_TIMEOUT_SECONDS": "0"}, "COPY_DEFAULT_TIMEOUT_SECONDS"),
        ({"COPY_STORAGE": AZURE_CS, "COPY_MAX_TIMEOUT_SECONDS": "1209600"}, "COPY_MAX_TIMEOUT_SECONDS"),
        (
            {"COPY_STORAGE": AZURE_CS, "COPY_DEFAULT_TIMEOUT_SECONDS": "7200", "COPY_MAX_TIMEOUT_SECONDS": "3600"},
            "COPY_DEFAULT_TIMEOUT_SECONDS",
        ),
        ({"COPY_STORAGE": AZURE_CS, "COPY_LEDGER_CONTAINER": "Bad_Name"}, "COPY_LEDGER_CONTAINER"),
        ({"COPY_STORAGE": AZURE_CS, "COPY_SWEEP_CONCURRENCY": "0"}, "COPY_SWEEP_CONCURRENCY"),
        ({"COPY_STORAGE": AZURE_CS, "COPY_SWEEP_BUDGET_SECONDS": "-1"}, "COPY_SWEEP_BUDGET_SECONDS"),
        ({"COPY_STORAGE": AZURE_CS, "COPY_ALLOWED_SOURCE_HOSTS": " , "}, "COPY_ALLOWED_SOURCE_HOSTS"),
        (
            {"COPY_STORAGE": AZURE_CS, "COPY_FIRST_CHECK_SECONDS": "60", "COPY_MAX_CHECK_INTERVAL_SECONDS": "30"},
            "COPY_MAX_CHECK_INTERVAL_SECONDS",
        ),
        ({"COPY_STORAGE": AZURE_CS, "COPY_EVENTS_QUEUE": "Events!"}, "COPY_EVENTS_QUEUE"),
        (
            {"COPY_STORAGE": AZURE_CS, "COPY_EVENTS_TOPIC_ENDPOINT": "http://topic.example/api"},
            "COPY_EVENTS_TOPIC_ENDPOINT",
        ),
        (
            {"COPY_STORAGE": AZURE_CS, "COPY_EVENTS_TOPIC_ENDPOINT": "https://t.example/api?aeg-sas-key=x"},
            "COPY_EVENTS_TOPIC_ENDPOINT",
        ),
        ({"COPY_STORAGE": AZURE_CS, "COPY_EVENTS_TOPIC_KEY": "topic-secret"}, "COPY_EVENTS_TOPIC_KEY"),
        ({"COPY_STORAGE": AZURE_CS, "COPY_WORK_UNSEALED_UNTIL": "tomorrow"}, "COPY_WORK_UNSEALED_UNTIL"),
        ({"COPY_STORAGE": AZURE_CS, "COPY_WORK_UNSEALED_UNTIL": "2026-12-06T06:00:00"}, "COPY_WORK_UNSEALED_UNTIL"),
    ],
)
def test_a_bad_setting_is_one_clear_error_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    assert named.startswith(caught.value.code or "-")  # the setting, or its family
    assert named in caught.value.detail
    assert KEY not in caught.value.detail


def test_lists_are_trimmed_and_lowercased() -> None:
    settings = Settings.from_env(
        {"COPY_STORAGE": AZURE_CS, "COPY_ALLOWED_SOURCE_HOSTS": " *.Blob.Core.Windows.Net , partner.example "}
    )
    assert settings.allowed_source_hosts == ("*.blob.core.windows.net", "partner.example")


def test_endpoint_of_a_connection_string_without_account_is_an_error() -> None:
    with pytest.raises(ValueError, match="neither"):
        endpoint_of("DefaultEndpointsProtocol=https", "blob")


def test_unsealed_work_messages_are_taken_only_until_a_time_set_for_an_upgrade() -> None:
    env = {"COPY_STORAGE": AZURE_CS}
    assert Settings.from_env(env).work_unsealed_until is None
    until = Settings.from_env({**env, "COPY_WORK_UNSEALED_UNTIL": "2026-12-06T07:00:00+01:00"}).work_unsealed_until
    assert until is not None and until.isoformat() == "2026-12-06T06:00:00+00:00"
