// copy-ops on Azure Functions Flex Consumption, deployed by `azd up`.
// The resource group and everything in it; docs/deploy.md explains each part.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment: names and tags every resource.')
param environmentName string

@minLength(1)
@description('Region of every resource; one that offers Flex Consumption.')
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of a user to be given data access to the copies account, for trying things out. Empty: nobody.')
param principalId string = ''

@description('Resource ids of storage accounts the app may copy from with its identity (it gets Storage Blob Data Reader and Storage Blob Delegator on each).')
param sourceAccountIds array = []

@minValue(1)
@description('Days after which final operation records and idempotency claims are deleted by a lifecycle rule.')
param recordRetentionDays int = 90

@description('COPY_ALLOWED_SOURCE_HOSTS. Empty: the copies account and every account in sourceAccountIds.')
param allowedSourceHosts string = ''

@description('COPY_ALLOWED_DESTINATION_CONTAINERS: comma list of container patterns.')
param allowedDestinationContainers string = '*'

@description('The most instances the app scales out to.')
param maximumInstanceCount int = 40

@description('Replication of the account that holds the copies and the ledger.')
@allowed(['Standard_ZRS', 'Standard_GRS', 'Standard_GZRS', 'Standard_RAGRS', 'Standard_RAGZRS'])
param copiesStorageSku string = 'Standard_ZRS'

@description('Client id of the app registration callers sign in for (infra/register-api.sh). Given: App Service Authentication in front of the app and COPY_AUTH entra. Empty: callers use function keys (COPY_AUTH keys).')
param apiClientId string = ''

var tags = { 'azd-env-name': environmentName }
var token = toLower(uniqueString(subscription().id, environmentName, location))

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module app 'app/resources.bicep' = {
  name: 'copy-ops'
  scope: rg
  params: {
    location: location
    tags: tags
    token: token
    principalId: principalId
    sourceAccountIds: sourceAccountIds
    recordRetentionDays: recordRetentionDays
    allowedSourceHosts: allowedSourceHosts
    allowedDestinationContainers: allowedDestinationContainers
    maximumInstanceCount: maximumInstanceCount
    copiesStorageSku: copiesStorageSku
    apiClientId: apiClientId
  }
}

// Each source account, wherever it lives: the identity may read it and mint user delegation SAS.
module sourceRoles 'app/source-roles.bicep' = [
  for id in sourceAccountIds: {
    name: 'source-roles-${uniqueString(id)}'
    scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
    params: {
      accountName: last(split(id, '/'))
      principalId: app.outputs.identityPrincipalId
    }
  }
]

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = app.outputs.functionAppName
output SERVICE_API_NAME string = app.outputs.functionAppName
output COPY_OPS_URL string = app.outputs.url
output COPY_OPS_STORAGE_ACCOUNT string = app.outputs.copiesAccountName
// What the CLI signs in for (copy-ops --audience, COPY_OPS_AUDIENCE); empty where callers use keys.
output COPY_OPS_AUDIENCE string = empty(apiClientId) ? '' : 'api://${apiClientId}'
