"""The webhook notifier: settings, events (never environment values), delivery with retries to a real
local HTTP receiver, and a dead receiver that only costs a warning."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from canary_harness import notify
from canary_harness.cli import main
from canary_harness.errors import ConfigError
from canary_harness.pytest_plugin.record import StageRecord
from tests.integration.stackfixtures import free_port


class Receiver:
    """A real HTTP receiver on a free loopback port; answers each POST with the next queued status."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.events.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A live receiver, stopped after the test."""
    server = Receiver()
    yield server
    server.close()


def _record() -> StageRecord:
    record = StageRecord(
        canary_version="v0.2.0",
        production_version="v0.1.0",
        stage=25,
        dry_run=False,
        judge="sequential",
        weight_in_force=25,
    )
    record.verdict = {
        "state": "FAIL",
        "decided": True,
        "warning": False,
        "elapsed_s": 4.0,
        "judge": "sequential",
        "reason": "FAIL after 4 s, roll back: 5xx rate 5.88% > SLO 0.50% over 153 requests (canary)",
        "checks": [
            {"name": "error_rate", "state": "FAIL", "message": "5xx rate 5.88% > SLO 0.50%"},
            {"name": "rl_loss", "state": "RUNNING", "message": "..."},
        ],
    }
    return record


def test_settings_from_toml_and_flags() -> None:
    settings = notify.NotifySettings.from_mapping(
        {"urls": ["http://a/x"], "timeout_s": 2, "retries": 0}, "canary.toml [notify]", ["http://b/y", "http://a/x"]
    )
    assert settings.urls == ("http://a/x", "http://b/y") and settings.timeout_s == 2 and settings.retries == 0


@pytest.mark.parametrize(
    ("data", "extra", "message"),
    [
        ({"urls": "http://a"}, [], "urls must be a list"),
        ({"timeout_s": 0}, [], "timeout_s must be a positive number"),
        ({"retries": -1}, [], "retries must be an integer ≥ 0"),
        ({"url": ["http://a"]}, [], "unknown key(s) ['url']"),
        ({}, ["ftp://a/b"], "notify URL 'ftp://a/b' (flag --canary-notify / --notify)"),
    ],
)
def test_bad_settings_name_the_value_and_source(data: dict[str, Any], extra: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        notify.NotifySettings.from_mapping(data, "canary.toml [notify]", extra)
    assert message in str(caught.value)


def test_events_are_slack_compatible_and_structured() -> None:
    record = _record()
    applied, verdict = notify.stage_applied(record), notify.verdict(record)
    assert applied["event"] == "stage_applied" and applied["weight"] == 25
    assert "stage 25% applied" in applied["text"]
    assert verdict["state"] == "FAIL"
    assert verdict["failed_checks"] == [{"name": "error_rate", "message": "5xx rate 5.88% > SLO 0.50%"}]
    assert verdict["text"].startswith("canary v0.2.0: stage 25% verdict FAIL: FAIL after 4 s")
    assert notify.rollback("v0.2.0", 25, "verdict FAIL", 0)["event"] == "rollback"
    assert notify.rollback("v0.2.0", 25, "weight 25", None, ok=False)["event"] == "rollback_failed"
    assert notify.promotion("v0.2.0")["text"] == "canary v0.2.0: promoted, production now runs it"
    for event in (applied, verdict):
        json.dumps(event)  # JSON-ready as posted


def test_receiver_gets_the_events_in_order(receiver: Receiver) -> None:
    warnings: list[str] = []
    notifier = notify.Notifier(notify.NotifySettings(urls=(receiver.url,)), warnings.append)
    record = _record()
    for event in (notify.stage_applied(record), notify.verdict(record), notify.rollback("v0.2.0", 25, "r", 0)):
        notifier.send(event)
    notifier.close()
    assert [event["event"] for event in receiver.events] == ["stage_applied", "verdict", "rollback"]
    assert warnings == []


def test_a_failing_receiver_is_retried_then_succeeds() -> None:
    server = Receiver(statuses=[503, 500])
    try:
        notifier = notify.Notifier(
            notify.NotifySettings(urls=(server.url,), retries=2, backoff_s=0.01), lambda text: None
        )
        notifier.send(notify.promotion("v0.2.0"))
        notifier.close()
        assert [event["event"] for event in server.events] == ["promotion"]
        assert server.statuses == []  # both failures were consumed by the retries
    finally:
        server.close()


def test_a_dead_receiver_costs_a_warning_not_an_exception() -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    warnings: list[str] = []
    notifier = notify.Notifier(
        notify.NotifySettings(urls=(dead,), timeout_s=1, retries=1, backoff_s=0.01), warnings.append
    )
    notifier.send(notify.verdict(_record()))
    notifier.close()
    assert len(warnings) == 1 and dead in warnings[0] and "verdict not delivered" in warnings[0]
    assert notifier.sent == []


def test_promote_with_a_bad_notify_url_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["promote", "--version", "v0.2.0", "--notify", "ftp://chat/hook", "--run-dir", str(tmp_path)])
    assert code == 2
    assert "notify URL 'ftp://chat/hook' (flag --canary-notify / --notify)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing locked, nothing journaled
