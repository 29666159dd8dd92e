"""Stash keys shared by the plugin's hooks and fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.pytest_plugin.options import StageOptions
from canary_harness.pytest_plugin.record import StageRecord

OPTIONS_KEY = pytest.StashKey[StageOptions]()
RECORD_PATH_KEY = pytest.StashKey[Path]()
RECORD_KEY = pytest.StashKey[StageRecord]()
