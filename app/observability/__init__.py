"""Metrics (Prometheus) and request-scoped logging for the API and the workers."""
