"""Embedding-drift statistics: two-sample tests, model-change probes and reports (plain Python, no Dagster)."""
