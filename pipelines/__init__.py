"""Dagster definitions: jobs, schedules and sensors over the assets, built from the YAML config."""
