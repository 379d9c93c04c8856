#!/usr/bin/env sh
# Registers copy-ops' API in Microsoft Entra ID for the current azd environment, and gives
# its client id to azd (AZURE_API_CLIENT_ID), so that the next `azd provision` puts App
# Service Authentication in front of the app and sets COPY_AUTH to entra. Bicep's own
# resource types cannot register an application; docs/deploy.md says why this is not done
# with the Microsoft Graph extension. The registration (infra/api-registration.json): the
# app roles Copies.Start, Copies.Read and Copies.Admin, v2 access tokens for
# api://<client id>, groups in the token, this tenant only, and the Azure CLI pre-authorized
# for the scope user_impersonation, so that a person signed in with `az login` gets a token
# for the API without a consent prompt. Its service principal then requires an app role
# assignment: only those given a role get a token at all.
#
# Needs az, signed in to the tenant with the right to register applications, and azd.
# Running it again completes what an interrupted run left undone, and changes nothing else.
set -eu
cd "$(dirname "$0")/.."

app_id=$(azd env get-value AZURE_API_CLIENT_ID 2>/dev/null || true)
if [ -z "$app_id" ]; then
  app_id=$(az rest --method POST --url https://graph.microsoft.com/v1.0/applications \
    --headers Content-Type=application/json --body @infra/api-registration.json --query appId --output tsv)
  # At once, so that a run interrupted below finds this registration again.
  azd env set AZURE_API_CLIENT_ID "$app_id"
fi
# The audience callers ask a token for: known only once the registration has its id.
az ad app update --id "$app_id" --identifier-uris "api://$app_id" \
  --display-name "copy-ops-$(azd env get-value AZURE_ENV_NAME)"
if ! az ad sp show --id "$app_id" --query id --output tsv >/dev/null 2>&1; then
  az ad sp create --id "$app_id" --query id --output tsv >/dev/null
fi
az ad sp update --id "$app_id" --set appRoleAssignmentRequired=true

echo "copy-ops' API is registered: client id $app_id, audience api://$app_id (AZURE_API_CLIENT_ID)."
echo "Give callers a role (docs/deploy.md, \"Giving a caller a role\"), then run: azd provision"
