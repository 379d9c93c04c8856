"""Copies: one blob copied under a deadline (model, request, records, start, settle, read, service)."""
