"""Observability: CloudEvents of final states, metrics and spans, the Azure Monitor adapter."""
