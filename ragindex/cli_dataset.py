"""CLI: `dataset generate` and `ask`."""

from __future__ import annotations

import argparse


def add_dataset_commands(sub: argparse._SubParsersAction) -> None:
    """Register the dataset subcommands (filled in by the dataset work)."""
