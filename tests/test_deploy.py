"""The deployment templates (azure.yaml, infra/) against the app: every setting the app
reads is set by the template, every setting the template sets is read by the app (or by
the Functions host, said why), identity only, and the parameters azd fills in exist.
checkov checks the templates statically in `make test` (scripts/test.sh)."""

from __future__ import annotations

import json
import re

from copy_ops.core.settings import Settings
from devkit import PROJECT_ROOT
from tests.support.env import RecordingEnv

INFRA = PROJECT_ROOT / "infra"
RESOURCES = (INFRA / "app" / "resources.bicep").read_text()
MAIN = (INFRA / "main.bicep").read_text()
# The forms an identity deployment does not use: the connection strings, and the account
# name given instead of an endpoint.
ALTERNATIVES = {"COPY_STORAGE", "AzureWebJobsStorage", "COPY_STORAGE__accountName", "AzureWebJobsStorage__accountName"}
# Set by the template for the Functions host, not read by the app.
FOR_THE_HOST = {
    "AzureWebJobsStorage__tableServiceUri": "the host keeps some of its state in tables",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "the host's telemetry",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "telemetry with the app's identity (Entra ID)",
}
# Read by the app, set by the platform: App Service Authentication says it is on.
BY_THE_PLATFORM = {"WEBSITE_AUTH_ENABLED"}


def template_settings() -> dict[str, str]:
    begin = RESOURCES.index("// -- the app's settings")
    end = RESOURCES.index("// -- end of the app's settings --")
    found = re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*):\s*(.+)$", RESOURCES[begin:end], flags=re.MULTILINE)
    return dict(found)


def names_the_app_reads() -> set[str]:
    env = RecordingEnv(
        {
            "AzureWebJobsStorage__blobServiceUri": "https://host.blob.core.windows.net/",
            "AzureWebJobsStorage__credential": "managedidentity",
            "COPY_STORAGE__blobServiceUri": "https://copies.blob.core.windows.net/",
            "COPY_STORAGE__credential": "managedidentity",
        }
    )
    Settings.from_env(env)
    return env.read


def test_the_template_sets_what_the_app_reads_and_nothing_else() -> None:
    settings = set(template_settings())
    assert settings, "no settings block found in infra/app/resources.bicep"
    assert names_the_app_reads() - ALTERNATIVES - BY_THE_PLATFORM == settings - set(FOR_THE_HOST)


def test_identity_only() -> None:
    settings = template_settings()
    assert settings["COPY_STORAGE__credential"] == settings["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert "identity.properties.clientId" in settings["COPY_STORAGE__clientId"]
    assert RESOURCES.count("allowSharedKeyAccess: false") == 2
    for secret in ("AccountKey", "listKeys", "SharedAccessSignature", "connectionString("):
        assert secret not in RESOURCES + MAIN


def test_the_roles_each_identity_needs_are_assigned() -> None:
    roles = {
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
        "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    }
    for role_id in roles:
        assert role_id in RESOURCES
    sources = (INFRA / "app" / "source-roles.bicep").read_text()
    assert "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1" in sources  # Storage Blob Data Reader
    assert "db58b8e5-c6ad-4a2a-8342-4190687cbf4a" in sources  # Storage Blob Delegator


def test_azd_fills_in_parameters_that_exist() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = set(re.findall(r"^param (\w+)", MAIN, flags=re.MULTILINE))
    assert set(parameters) <= declared
    assert {"environmentName", "location"} <= set(parameters)
    azure_yaml = (PROJECT_ROOT / "azure.yaml").read_text()
    assert "host: function" in azure_yaml and "language: python" in azure_yaml


def test_the_runtime_is_pinned_to_the_python_the_worker_check_uses() -> None:
    assert "runtime: { name: 'python', version: '3.13' }" in RESOURCES
    assert "FUNCTIONS_WORKER_RUNTIME" not in RESOURCES  # Flex Consumption refuses it as a setting


def test_the_lifecycle_rule_deletes_each_kind_of_ledger_document_the_app_leaves_behind() -> None:
    """Records, idempotency claims, jobs' batch marks and manifest chunk digests are deleted
    after the retention period (records only once final, by their tag); job records,
    reports and keys are kept on purpose. A new kind of document needs its rule here."""
    from copy_ops.copies.records import CLAIM_PREFIX, RECORD_PREFIX
    from copy_ops.jobs.chunks import CHUNKS_PREFIX
    from copy_ops.jobs.records import BATCH_PREFIX

    # Each rule's prefix, written in the ledger's container (the records' once, as a variable).
    ruled = set(re.findall(r"'\$\{ledgerContainerName\}/([a-z-]+/)'", RESOURCES))
    assert ruled == {RECORD_PREFIX, CLAIM_PREFIX, BATCH_PREFIX, CHUNKS_PREFIX}
