"""Dagster resources: thin, configurable wrappers over the engines in `ragindex`."""
