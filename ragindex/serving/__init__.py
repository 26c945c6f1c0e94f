"""Serving: the registered MLflow retriever model."""
