"""Manual approval gate (an example site plugin): a stage waits for a person before any traffic moves.

``--canary-approval-file PATH``: the stage starts once PATH exists (``touch PATH``); a file whose first
word is ``deny`` refuses it. The file is removed once read, so in a rollout each stage waits for a new
approval. ``--canary-approval-url URL``: the stage polls URL until it answers JSON ``{"approved": true}``
(or ``false`` to refuse). ``--canary-approval-timeout S`` (default 600) bounds the wait.

Refused or timed out, the session exits 4 before the stage starts: nothing was changed by it (a rollout
then rolls back what earlier stages moved, as for any stage that does not pass).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from canary_harness.pytest_plugin.console import say
from canary_harness.pytest_plugin.keys import OPTIONS_KEY
from canary_harness.waiting import wait_until

POLL_S = 0.5
APPROVED, DENIED = "approved", "denied"


def pytest_addoption(parser: pytest.Parser) -> None:
    """The approval gate's options."""
    group = parser.getgroup("canary")
    group.addoption(
        "--canary-approval-file",
        dest="canary_approval_file",
        metavar="PATH",
        help="wait until PATH exists before the stage (first word 'deny' refuses)",
    )
    group.addoption(
        "--canary-approval-url",
        dest="canary_approval_url",
        metavar="URL",
        help='wait until URL answers {"approved": true} before the stage',
    )
    group.addoption(
        "--canary-approval-timeout",
        dest="canary_approval_timeout",
        metavar="S",
        default="600",
        help="seconds to wait for the approval (default 600)",
    )


def _file_answer(path: Path) -> str | None:
    if not path.exists():
        return None
    words = path.read_text(encoding="utf-8", errors="replace").split()
    path.unlink()  # one approval per stage
    return DENIED if words and words[0].lower() == "deny" else APPROVED


def _url_answer(client: httpx.Client, url: str) -> str | None:
    response = client.get(url)
    if response.status_code != 200:
        return None
    approved = response.json().get("approved")
    if approved is True:
        return APPROVED
    return DENIED if approved is False else None


def _timeout(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise pytest.UsageError(f"--canary-approval-timeout {raw!r}: must be a positive number of seconds")
    return value


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Hold the stage until it is approved; exit 4 (nothing changed) if refused or not approved in time."""
    config = session.config
    options = config.stash.get(OPTIONS_KEY, None)
    path, url = config.getoption("canary_approval_file"), config.getoption("canary_approval_url")
    if options is None or hasattr(config, "workerinput") or not (path or url):
        return
    timeout = _timeout(config.getoption("canary_approval_timeout"))
    where = f"file {path}" if path else f"URL {url}"
    say(
        config,
        f"canary: stage {options.stage}% of {options.canary_version} waits for approval ({where}, {timeout:g} s)",
    )
    with httpx.Client(timeout=5.0) as client:

        def answer() -> str | None:
            return _file_answer(Path(path)) if path else _url_answer(client, url)

        try:
            verdict = wait_until(
                answer,
                timeout,
                POLL_S,
                describe=f"an approval from {where}",
                ignore=(httpx.HTTPError, ValueError, OSError),
            )
        except TimeoutError as exc:
            pytest.exit(
                f"canary: stage {options.stage}% not approved: {exc}; the stage did not start",
                returncode=pytest.ExitCode.USAGE_ERROR,
            )
    if verdict == DENIED:
        pytest.exit(
            f"canary: stage {options.stage}% refused by {where}; the stage did not start",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    say(config, f"canary: stage {options.stage}% approved ({where})")
