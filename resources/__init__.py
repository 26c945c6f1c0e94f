"""Dagster resources: the only doors to the engines (embedding model, LanceDB, staging storage, MLflow)."""
