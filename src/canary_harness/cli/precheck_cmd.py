"""`canary precheck`: placeholder until its module lands (registers nothing yet)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    """Register this module's sub-commands (none yet)."""
