"""The deployment templates (azure.yaml, infra/) against the app: every setting the app
reads is set by the template, every setting the template sets is read by the app (or by
the Functions host, said why), identity only, and the parameters azd fills in exist.
checkov checks the templates statically in `make test` (scripts/test.sh)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

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


# -- callers signed in with Microsoft Entra ID (docs/deploy.md) -------------------------

REGISTRATION = json.loads((INFRA / "api-registration.json").read_text())
REGISTER = INFRA / "register-api.sh"
# Microsoft's own client id of the Azure CLI: pre-authorized, a person's `az login` gets a token.
AZURE_CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


def resource(name: str) -> str:
    """The text of the template's top-level resource ``name``."""
    begin = RESOURCES.index(f"\nresource {name} ")
    return RESOURCES[begin : RESOURCES.index("\n}\n", begin) + 2]


def test_app_service_authentication_is_on_exactly_where_the_app_takes_entra_callers() -> None:
    """One condition turns both on, so the app never takes principals without the platform
    in front, and the platform's check goes off again with the registration."""
    assert "var signIn = !empty(apiClientId)" in RESOURCES
    assert template_settings()["COPY_AUTH"] == "signIn ? 'entra' : 'keys'"
    auth = resource("authentication")
    assert "'Microsoft.Web/sites/config@" in auth and "name: 'authsettingsV2'" in auth and "parent: app" in auth
    assert re.search(r"platform: \{ enabled: signIn \}", auth)
    assert re.search(r"requireAuthentication: signIn\s+unauthenticatedClientAction: 'Return401'", auth)
    assert re.search(r"azureActiveDirectory: \{\s+enabled: signIn\s+registration: \{\s+clientId: apiClientId", auth)
    assert "openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'" in auth
    assert "allowedAudiences: signIn ? ['api://${apiClientId}'] : []" in auth
    assert "tokenStore: { enabled: false }" in auth
    assert " if (" not in auth  # deployed always: off where no registration is given


def test_azd_hands_the_registration_to_the_template_and_its_audience_to_the_cli(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from copy_ops_cli.main import parser

    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["apiClientId"] == {"value": "${AZURE_API_CLIENT_ID}"}
    assert re.search(r"^param apiClientId string = ''$", MAIN, flags=re.MULTILINE)
    assert "apiClientId: apiClientId" in MAIN
    assert 'azd env set AZURE_API_CLIENT_ID "$app_id"' in REGISTER.read_text()
    # An output of azd's environment, named as the CLI's setting: `azd env get-values` has it.
    output = re.search(r"^output (\w+) string = empty\(apiClientId\) \? '' : 'api://\$\{apiClientId\}'$", MAIN, re.M)
    assert output is not None
    monkeypatch.setenv(output[1], "api://client-id")
    assert parser().parse_args(["whoami"]).audience == "api://client-id"


def test_the_registration_has_the_roles_the_app_and_the_local_callers_name() -> None:
    from copy_ops.core.callers import ADMIN_ROLE
    from devkit.issuer import CALLERS

    roles = {role["value"]: role for role in REGISTRATION["appRoles"]}
    assert set(roles) == {"Copies.Start", "Copies.Read", ADMIN_ROLE}
    assert {role for caller in CALLERS.values() for role in caller.roles} <= set(roles)
    for role in roles.values():
        assert set(role["allowedMemberTypes"]) == {"User", "Application"} and role["isEnabled"] is True
    api = REGISTRATION["api"]
    ids = [role["id"] for role in roles.values()] + [scope["id"] for scope in api["oauth2PermissionScopes"]]
    assert len({str(uuid.UUID(id_)) for id_ in ids}) == len(ids)
    # Tokens of this tenant only, in the v2 form (aud is the client id), groups in them.
    assert REGISTRATION["signInAudience"] == "AzureADMyOrg" and api["requestedAccessTokenVersion"] == 2
    assert REGISTRATION["groupMembershipClaims"] == "SecurityGroup"
    [scope] = api["oauth2PermissionScopes"]
    assert api["preAuthorizedApplications"] == [{"appId": AZURE_CLI, "delegatedPermissionIds": [scope["id"]]}]
    assert "identifierUris" not in REGISTRATION  # api://<client id>: set once the id is known


FAKE_TOOL = """#!{python}
import json, pathlib, sys
state_path = pathlib.Path({state!r})
state = json.loads(state_path.read_text())
argv = sys.argv[1:]
state["calls"].append(["{tool}", *argv])
answer, status = "", 0
if argv[:2] == ["env", "get-value"]:
    if argv[2] in state["env"]:
        answer = state["env"][argv[2]]
    else:
        print("ERROR: key not found", file=sys.stderr)
        status = 1
elif argv[:2] == ["env", "set"]:
    state["env"][argv[2]] = argv[3]
elif argv[0] == "rest":
    state["bodies"].append(json.loads(pathlib.Path(argv[argv.index("--body") + 1][1:]).read_text()))
    answer = "6e2c0d4f-58cb-4b1f-9f0a-6a0c2b9d7e11"
elif argv[:3] == ["ad", "sp", "show"]:
    status = 0 if state["principal"] else 1
elif argv[:3] == ["ad", "sp", "create"]:
    state["principal"] = True
state_path.write_text(json.dumps(state))
if answer:
    print(answer)
sys.exit(status)
"""


@pytest.mark.system
def test_the_registration_script_registers_once_and_hands_the_client_id_to_azd(tmp_path: Path) -> None:
    """Against stand-ins of az and azd that record their calls: what the script asks of them
    (not what Entra ID answers: that is checked on a deployment, docs/callers.md)."""
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"calls": [], "env": {"AZURE_ENV_NAME": "dev"}, "bodies": [], "principal": False}))
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("az", "azd"):
        (tools / tool).write_text(FAKE_TOOL.format(python=sys.executable, state=str(state), tool=tool))
        (tools / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    app_id = "6e2c0d4f-58cb-4b1f-9f0a-6a0c2b9d7e11"

    def run() -> tuple[list[list[str]], subprocess.CompletedProcess[str]]:
        before = len(json.loads(state.read_text())["calls"])
        done = subprocess.run(
            ["sh", str(REGISTER)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return json.loads(state.read_text())["calls"][before:], done

    calls, done = run()
    recorded = json.loads(state.read_text())
    assert recorded["bodies"] == [REGISTRATION] and recorded["env"]["AZURE_API_CLIENT_ID"] == app_id
    [create] = [call for call in calls if call[:2] == ["az", "rest"]]
    assert create[create.index("--method") + 1] == "POST"
    assert create[create.index("--url") + 1] == "https://graph.microsoft.com/v1.0/applications"
    [update] = [call for call in calls if call[:4] == ["az", "ad", "app", "update"]]
    assert update[update.index("--identifier-uris") + 1] == f"api://{app_id}"
    assert update[update.index("--display-name") + 1] == "copy-ops-dev"
    assert ["az", "ad", "sp", "update", "--id", app_id, "--set", "appRoleAssignmentRequired=true"] in calls
    assert f"api://{app_id}" in done.stdout
    # Again: the same registration, completed, not a second one.
    again, _ = run()
    assert not [call for call in again if call[:2] == ["az", "rest"] or call[:4] == ["az", "ad", "sp", "create"]]
    assert json.loads(state.read_text())["env"]["AZURE_API_CLIENT_ID"] == app_id


@pytest.mark.system
def test_checkov_reads_every_template() -> None:
    """checkov counts a template its parser cannot read as a parsing error and still exits 0,
    having checked nothing in it (a Bicep extension, a conditional child resource): each
    template is parsed here with checkov's own Bicep parser."""
    templates = [str(path) for path in sorted(INFRA.rglob("*.bicep"))]
    parse = (
        "import sys, pathlib, pycep\n"
        "for path in sys.argv[1:]: pycep.BicepParser().parse(text=pathlib.Path(path).read_text())"
    )
    checkov_python = PROJECT_ROOT / ".venv-checkov" / "bin" / "python"
    done = subprocess.run(
        [str(checkov_python), "-c", parse, *templates], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
