"""One line for people, through pytest's terminal reporter when there is one (it keeps the output in
order with pytest's own), else on stdout. Used by the plugin and by site plugins in ``plugins/``."""

from __future__ import annotations

import pytest


def say(config: pytest.Config, text: str) -> None:
    """Write ``text`` as its own line(s) on the terminal pytest writes to."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(text)
    else:
        print(text, flush=True)
