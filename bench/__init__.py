"""Benchmarks that print ratios measured side by side; figures go in docs/benchmarks.md."""
