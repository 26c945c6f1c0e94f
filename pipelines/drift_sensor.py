"""Sensors reacting to drift."""

DRIFT_SENSORS: list = []
