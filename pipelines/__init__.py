"""Dagster definitions: jobs, schedules and sensors over the assets, built once from the YAML config."""
