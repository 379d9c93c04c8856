"""The Azure Monitor adapter: the OpenTelemetry distro configured once per process.

Only the composition root calls it, and only with APPLICATIONINSIGHTS_CONNECTION_STRING
set (the distro reads that setting itself). Logs stay with the Functions host, which
already ships every log line; the distro would send each one twice.
"""

from __future__ import annotations

from typing import Any

from copy_ops.observability.telemetry import OpenTelemetry


def configure(authentication: str) -> OpenTelemetry:
    """Configure the distro; the telemetry on its global providers."""
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(disable_logging=True, **insights_credential(authentication))
    return OpenTelemetry.from_global()


def insights_credential(authentication: str) -> dict[str, Any]:
    """With ``Authorization=AAD`` in APPLICATIONINSIGHTS_AUTHENTICATION_STRING (Entra ID
    ingestion, local auth off, as the azd template deploys it; the host reads it itself),
    the exporter signs in with the managed identity that ``ClientId`` names."""
    parts = dict(part.split("=", 1) for part in authentication.split(";") if "=" in part)
    if parts.get("Authorization", "").strip().upper() != "AAD":
        return {}
    from azure.identity import ManagedIdentityCredential

    return {"credential": ManagedIdentityCredential(client_id=parts.get("ClientId") or None)}
