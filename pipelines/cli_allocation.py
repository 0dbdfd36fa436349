"""`carbon` commands of the carbon-rights allocation (registered by `pipelines.cli.build_parser`)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's commands to the `carbon` parser."""
