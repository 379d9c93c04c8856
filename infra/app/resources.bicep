// Everything copy-ops runs on, in one resource group. Identity only: no account keys,
// no connection strings (shared key access is off on both storage accounts).
param location string
param tags object
param token string
param principalId string
param sourceAccountIds array
param recordRetentionDays int
param allowedSourceHosts string
param allowedDestinationContainers string
param maximumInstanceCount int
@allowed(['Standard_ZRS', 'Standard_GRS', 'Standard_GZRS', 'Standard_RAGRS', 'Standard_RAGZRS'])
param copiesStorageSku string = 'Standard_ZRS'
@description('Client id of the app registration callers sign in for; empty: function keys only.')
param apiClientId string = ''

var ledgerContainerName = 'copy-operations'
var deploymentContainerName = 'app-package'
var storageSuffix = environment().suffixes.storage
// Callers signed in with Microsoft Entra ID, where the API is registered (infra/register-api.sh).
var signIn = !empty(apiClientId)
// What the lifecycle rule deletes after recordRetentionDays: final records, by their state
// tag (a pending record is never touched), idempotency claims, the empty marks a job's
// batches leave when done, and a manifest job's chunk digests (only a running job reads
// either: a job outlives no deadline).
var recordsPrefix = '${ledgerContainerName}/ops/'
var retentionFilters = [
  {
    name: 'succeeded-records'
    filters: {
      blobTypes: ['blockBlob']
      prefixMatch: [recordsPrefix]
      blobIndexMatch: [{ name: 'state', op: '==', value: 'succeeded' }]
    }
  }
  {
    name: 'failed-records'
    filters: {
      blobTypes: ['blockBlob']
      prefixMatch: [recordsPrefix]
      blobIndexMatch: [{ name: 'state', op: '==', value: 'failed' }]
    }
  }
  {
    name: 'aborted-records'
    filters: {
      blobTypes: ['blockBlob']
      prefixMatch: [recordsPrefix]
      blobIndexMatch: [{ name: 'state', op: '==', value: 'aborted' }]
    }
  }
  {
    name: 'idempotency-claims'
    filters: {
      blobTypes: ['blockBlob']
      prefixMatch: ['${ledgerContainerName}/idempotency/']
    }
  }
  {
    name: 'job-batch-marks'
    filters: {
      blobTypes: ['blockBlob']
      prefixMatch: ['${ledgerContainerName}/batches/']
    }
  }
  {
    // A manifest job's chunk digests: read only while its chunks are delivered.
    name: 'job-chunk-digests'
    filters: {
      blobTypes: ['blockBlob']
      prefixMatch: ['${ledgerContainerName}/chunks/']
    }
  }
]
var roles = {
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // the ledger writes and queries blob index tags
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  metricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb' // Application Insights with Entra ID auth
}

// -- identity -------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${token}'
  location: location
  tags: tags
}

// -- monitoring -----------------------------------------------------------------

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${token}'
  location: location
  tags: tags
  properties: {
    retentionInDays: 30
    sku: { name: 'PerGB2018' }
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    // Entra ID only: telemetry is sent with the app's identity, not the instrumentation key alone.
    DisableLocalAuth: true
  }
}

// -- the host's own storage (AzureWebJobsStorage) and the deployment package ---------

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:Flex Consumption without VNet integration reaches storage over its public endpoint; access is by Entra ID only (shared keys off, no public blobs). docs/deploy.md says how to add a VNet.
  // checkov:skip=CKV_AZURE_59:As CKV_AZURE_35: public endpoint, Entra ID only.
  // checkov:skip=CKV_AZURE_206:The host's own state (keys, timer leases, the deployment package) is rebuilt by a redeploy; locally redundant is enough.
  // checkov:skip=CKV_AZURE_43:A computed name, 'st' and uniqueString (13 lowercase letters and digits): within the naming rules.
  name: 'st${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
  resource blobs 'blobServices' = {
    name: 'default'
    properties: {
      deleteRetentionPolicy: { enabled: true, days: 7 }
      containerDeleteRetentionPolicy: { enabled: true, days: 7 }
    }
    resource deployment 'containers' = {
      name: deploymentContainerName
      properties: { publicAccess: 'None' }
    }
  }
}

// -- the copies' account: destinations, the ledger, the work and event queues ---------

resource copies 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:Flex Consumption without VNet integration reaches storage over its public endpoint; access is by Entra ID only (shared keys off, no public blobs). docs/deploy.md says how to add a VNet.
  // checkov:skip=CKV_AZURE_59:As CKV_AZURE_35: public endpoint, Entra ID only.
  // checkov:skip=CKV_AZURE_206:Replicated: copiesStorageSku allows only zone- or geo-redundant SKUs (default Standard_ZRS); the check cannot read a parameter.
  // checkov:skip=CKV_AZURE_43:A computed name, 'stc' and uniqueString (13 lowercase letters and digits): within the naming rules.
  name: 'stc${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  // The copies and the ledger: zone-redundant (copiesStorageSku).
  sku: { name: copiesStorageSku }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
  resource blobs 'blobServices' = {
    name: 'default'
    properties: {
      deleteRetentionPolicy: { enabled: true, days: 7 }
      containerDeleteRetentionPolicy: { enabled: true, days: 7 }
    }
    resource ledger 'containers' = {
      name: ledgerContainerName
      properties: { publicAccess: 'None' }
    }
  }
  // Record retention (retentionFilters above): deleted after recordRetentionDays without a write.
  resource retention 'managementPolicies' = {
    name: 'default'
    properties: {
      policy: {
        rules: [
          for rule in retentionFilters: {
            enabled: true
            name: rule.name
            type: 'Lifecycle'
            definition: {
              actions: { baseBlob: { delete: { daysAfterModificationGreaterThan: recordRetentionDays } } }
              filters: rule.filters
            }
          }
        ]
      }
    }
  }
}

// -- the function app -----------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Flex Consumption's zone redundancy is a regional option (properties.zoneRedundant) that not every region offers; docs/deploy.md.
  name: 'plan-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

var copiesHost = '${copies.name}.blob.${storageSuffix}'
var sourceHosts = [for id in sourceAccountIds: '${last(split(id, '/'))}.blob.${storageSuffix}']
var sourceHostsSetting = empty(allowedSourceHosts) ? join(concat([copiesHost], sourceHosts), ',') : allowedSourceHosts

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:An HTTP API called from pipelines: reachable over HTTPS, every route needs a token of Entra ID (authsettingsV2 below) or, without a registration, a function key.
  // checkov:skip=CKV_AZURE_17:Callers authenticate with tokens of Entra ID or function keys, not client certificates.
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero; always-ready instances are an option that costs money at rest.
  // checkov:skip=CKV_AZURE_213:Flex Consumption manages its instances' health; it has no health-check path.
  name: 'func-${token}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: maximumInstanceCount, instanceMemoryMB: 2048 }
      runtime: { name: 'python', version: '3.13' }
    }
  }

  resource settings 'config' = {
    // The checks below read site configuration; this 'config' resource is the app settings.
    // checkov:skip=CKV_AZURE_66:Not site configuration: app settings (requests are traced by Application Insights).
    // checkov:skip=CKV_AZURE_63:Not site configuration: app settings (HTTP logs go to Application Insights).
    // checkov:skip=CKV_AZURE_65:Not site configuration: app settings (errors are problem+json, logged in Application Insights).
    // checkov:skip=CKV_AZURE_222:Not site configuration: app settings (see the site's own skip).
    // checkov:skip=CKV_AZURE_80:Not site configuration: app settings; the app is Python, not .NET.
    // checkov:skip=CKV_AZURE_13:Not site configuration: app settings; callers use function keys.
    // checkov:skip=CKV_AZURE_88:Not site configuration: app settings; Flex Consumption deploys from blob storage, not Azure Files.
    name: 'appsettings'
    properties: {
      // -- the app's settings: tests/test_deploy.py checks them against what the app reads --
      AzureWebJobsStorage__blobServiceUri: hostStorage.properties.primaryEndpoints.blob
      AzureWebJobsStorage__queueServiceUri: hostStorage.properties.primaryEndpoints.queue
      AzureWebJobsStorage__tableServiceUri: hostStorage.properties.primaryEndpoints.table
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identity.properties.clientId
      COPY_STORAGE__blobServiceUri: copies.properties.primaryEndpoints.blob
      COPY_STORAGE__queueServiceUri: copies.properties.primaryEndpoints.queue
      COPY_STORAGE__credential: 'managedidentity'
      COPY_STORAGE__clientId: identity.properties.clientId
      APPLICATIONINSIGHTS_CONNECTION_STRING: insights.properties.ConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
      COPY_ALLOWED_SOURCE_HOSTS: sourceHostsSetting
      COPY_ALLOWED_DESTINATION_CONTAINERS: allowedDestinationContainers
      COPY_LEDGER_CONTAINER: ledgerContainerName
      // Blank: the app's documented default (README, Settings), so that there is one source for each.
      COPY_SWEEP_SCHEDULE: ''
      COPY_DEFAULT_TIMEOUT_SECONDS: ''
      COPY_MAX_TIMEOUT_SECONDS: ''
      COPY_SWEEP_CONCURRENCY: ''
      COPY_SWEEP_BUDGET_SECONDS: ''
      COPY_FIRST_CHECK_SECONDS: ''
      COPY_MAX_CHECK_INTERVAL_SECONDS: ''
      COPY_START_GRACE_SECONDS: ''
      COPY_WORK_QUEUE: ''
      COPY_FANOUT_THRESHOLD: ''
      COPY_JOB_MANIFEST_MAX: ''
      COPY_JOB_PAGE_SIZE: ''
      COPY_JOB_REPORT_PART: ''
      COPY_JOB_ITEM_CLAIM_SECONDS: ''
      COPY_ENGINE: ''
      COPY_ESCALATE_AT: ''
      COPY_BLOCKS_IN_FLIGHT: ''
      COPY_RETRY_ATTEMPTS: ''
      COPY_RETRY_BACKOFF_SECONDS: ''
      // Only for an upgrade from a version before sealed work messages (docs/design.md).
      COPY_WORK_UNSEALED_UNTIL: ''
      // Events are off until a target is set (docs/api.md, Events); a topic is reached with
      // the app's identity (give it EventGrid Data Sender there), so no key is stored here.
      COPY_EVENTS_QUEUE: ''
      COPY_EVENTS_TOPIC_ENDPOINT: ''
      COPY_EVENTS_TOPIC_KEY: ''
      // Callers signed in with Entra ID where the API is registered (App Service Authentication,
      // authsettingsV2 below, is then in front). Else by function key: without the platform in
      // front nothing strips a principal header a client sends (docs/callers.md).
      COPY_AUTH: signIn ? 'entra' : 'keys'
      // No rules: only admins copy (every key's holder; signed in, Copies.Admin).
      COPY_POLICY: ''
      // -- end of the app's settings --
    }
    dependsOn: [hostBlobOwner, hostQueues, hostTables, copiesBlobOwner, copiesQueues, publisher]
  }
}

// -- App Service Authentication, on where the API is registered -----------------------

// Where apiClientId is given, every request needs a token of the tenant's Entra ID for the
// API's audience, validated by the platform before the app sees it; without one it is 401.
// The platform then passes the caller on in X-MS-CLIENT-PRINCIPAL and sets
// WEBSITE_AUTH_ENABLED, without which the app refuses COPY_AUTH entra (docs/callers.md).
// Always deployed, off without a registration: a deployment that drops the registration
// turns the platform's check off again, as it turns COPY_AUTH back to keys.
resource authentication 'Microsoft.Web/sites/config@2024-04-01' = {
  // The checks below read site configuration or the older authsettings; this is authsettingsV2.
  // checkov:skip=CKV_AZURE_13:authsettingsV2, which the check does not read (it reads authsettings' properties.enabled): platform.enabled turns it on where the API is registered.
  // checkov:skip=CKV_AZURE_66:Not site configuration: authentication settings (requests are traced by Application Insights).
  // checkov:skip=CKV_AZURE_63:Not site configuration: authentication settings (HTTP logs go to Application Insights).
  // checkov:skip=CKV_AZURE_65:Not site configuration: authentication settings (errors are problem+json, logged in Application Insights).
  // checkov:skip=CKV_AZURE_222:Not site configuration: authentication settings (see the site's own skip).
  // checkov:skip=CKV_AZURE_80:Not site configuration: authentication settings; the app is Python, not .NET.
  // checkov:skip=CKV_AZURE_88:Not site configuration: authentication settings; Flex Consumption deploys from blob storage, not Azure Files.
  parent: app
  name: 'authsettingsV2'
  properties: {
    platform: { enabled: signIn }
    globalValidation: {
      requireAuthentication: signIn
      unauthenticatedClientAction: 'Return401'
    }
    httpSettings: { requireHttps: true }
    identityProviders: {
      azureActiveDirectory: {
        enabled: signIn
        registration: {
          clientId: apiClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        // The client id itself is an allowed audience too: v2 access tokens carry it as aud.
        validation: { allowedAudiences: signIn ? ['api://${apiClientId}'] : [] }
      }
    }
    // Callers send a bearer token with every request: no session, nothing to store.
    login: { tokenStore: { enabled: false } }
  }
}

// -- roles of the app's identity ---------------------------------------------------

resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, identity.id, roles.blobDataOwner)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource hostQueues 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, identity.id, roles.queueDataContributor)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.queueDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource hostTables 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, identity.id, roles.tableDataContributor)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.tableDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource copiesBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(copies.id, identity.id, roles.blobDataOwner)
  scope: copies
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource copiesQueues 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(copies.id, identity.id, roles.queueDataContributor)
  scope: copies
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.queueDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, roles.metricsPublisher)
  scope: insights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.metricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// A developer, to look at the copies and the ledger while trying things out (optional).
resource developer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(copies.id, principalId, roles.blobDataOwner)
  scope: copies
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataOwner)
    principalId: principalId
    principalType: 'User'
  }
}

output identityPrincipalId string = identity.properties.principalId
output functionAppName string = app.name
output url string = 'https://${app.properties.defaultHostName}'
output copiesAccountName string = copies.name
