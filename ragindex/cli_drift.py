"""CLI: `drift`."""

from __future__ import annotations

import argparse


def add_drift_commands(sub: argparse._SubParsersAction) -> None:
    """Register the drift subcommand (filled in by the drift work)."""
