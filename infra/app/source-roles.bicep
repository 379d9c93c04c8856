// What the app's identity needs on a storage account it copies from: read its blobs, and
// mint user delegation SAS for them (an identity's token cannot authorize the source of an
// asynchronous Copy Blob). Deployed in the source account's own resource group.
param accountName string
param principalId string

var readerRole = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1' // Storage Blob Data Reader
var delegatorRole = 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a' // Storage Blob Delegator

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: accountName
}

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, readerRole)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', readerRole)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource delegator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, delegatorRole)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', delegatorRole)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
