"""The ``canary_target(name)`` marker: a release check of one service's own paths, metrics or logs."""

from __future__ import annotations

import pytest

from canary_harness.pytest_plugin.keys import OPTIONS_KEY


def target_skip_reason(item: pytest.Item) -> str | None:
    """Why ``item`` is skipped for the target released (its ``canary_target`` marker names another); None
    if it runs."""
    options = item.config.stash.get(OPTIONS_KEY, None)
    marker = item.get_closest_marker("canary_target")
    if options is None or marker is None:
        return None
    target = options.stack.target.name
    if target in marker.args:
        return None
    return f"a check of {', '.join(marker.args)}'s own; the target released is {target}"
