"""A rollback against a real NGINX whose live file or reload does not behave: what it must leave.

* A reload that is not confirmed while going to 0 % never puts the previous (non-zero) file back: the
  next reload would hand the canary its share again.
* A rollback that finds 0 % in force still rewrites a live upstream file that says otherwise.
* A rollback with production not answering is a failed rollback (users get errors), the canary is kept.
"""

from __future__ import annotations

import socket

import pytest

from canary_harness.cli import main
from canary_harness.errors import RollbackError, TrafficError
from canary_harness.journal import read
from canary_harness.rollback import rollback
from canary_harness.stack import LocalStack
from canary_harness.stack_state import load_state
from canary_harness.traffic.nginx import NginxTrafficController, probe_split
from canary_harness.traffic.render import render_upstream
from canary_harness.waiting import wait_until
from tests.integration.stackfixtures import StackFactory

pytest_plugins = ("tests.integration.stackfixtures",)
pytestmark = pytest.mark.integration


def test_unconfirmed_reload_to_zero_keeps_the_zero_file(canary_stack_at_zero: LocalStack) -> None:
    """``nginx -t`` passes (it does not bind) but the master cannot bind the new listener: no reload."""
    base = canary_stack_at_zero.traffic()
    base.set_canary_weight(25, reason="test")
    traffic = NginxTrafficController(
        base.dir, listen_port=base.listen_port, production=base.production, canary=base.canary,
        reload_timeout=1.5,
    )  # fmt: skip
    template = traffic.upstream_template.read_text()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        traffic.upstream_template.write_text(template + f"\nserver {{ listen 127.0.0.1:{busy.getsockname()[1]}; }}\n")
        try:
            with pytest.raises(TrafficError, match="0 % configuration stays"):
                traffic.set_canary_weight(0, reason="rollback whose reload is refused")
        finally:
            traffic.upstream_template.write_text(template)
    assert traffic.configured_weights().canary == 0, "the previous canary weight was put back in the live file"
    # Honest about what serves: the master kept its previous configuration.
    assert traffic.canary_weight() == 25
    result = rollback(canary_stack_at_zero.settings, version="v0.2.0", stage=25, reason="test", keep_canary=True)
    assert (result.weight_before, result.weight_after, result.probe["canary"]) == (25, 0, 0)


def test_rollback_at_zero_rewrites_a_live_file_that_says_otherwise(canary_stack_at_zero: LocalStack) -> None:
    traffic = canary_stack_at_zero.traffic()
    assert traffic.canary_weight() == 0
    stale = render_upstream(
        traffic.upstream_template.read_text(),
        75,
        25,
        production=traffic.production,
        canary=traffic.canary,
        generation="stale-25",
    )
    traffic.upstream_conf.write_text(stale)  # left by a reload that was never confirmed
    result = rollback(canary_stack_at_zero.settings, version="v0.2.0", stage=25, reason="test", keep_canary=True)
    assert result.rewrote_upstream and result.weight_before == 0 and result.weight_after == 0
    assert traffic.configured_weights().canary == 0
    assert traffic.weights_in_force().generation == traffic.configured_generation()
    # A reload now (what any later weight change or an operator's `nginx -s reload` does) keeps 0 %.
    old_workers = set(traffic.process.workers())
    traffic.process.reload()
    # Probed once the new workers alone accept: an old worker closing its idle keep-alive connections
    # mid-reload fails a request in transit, which says nothing about the split.
    wait_until(
        lambda: bool(traffic.process.workers()) and not old_workers & set(traffic.process.workers()),
        10.0,
        0.01,
        "new nginx workers after the reload",
    )
    split = probe_split(traffic.base_url, 200, concurrency=2)
    assert (split.canary, split.production) == (0, 200), split.to_dict() | {"errors": split.errors}


def test_rollback_with_production_down_fails_and_keeps_the_canary(
    stack_factory: StackFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = stack_factory(canary_weight=25)
    state = load_state(stack.run_dir)
    assert state is not None and state.production is not None and state.canary is not None
    stack.backend.stop(state.production)
    with pytest.raises(RollbackError, match="production does not answer") as caught:
        rollback(stack.settings, version="v0.2.0", stage=25, reason="test")
    assert "Next:" in str(caught.value)
    assert stack.traffic().canary_weight() == 0
    after = load_state(stack.run_dir)
    assert after is not None and after.canary is not None and stack.backend.is_healthy(after.canary)
    events = [entry.event for entry in read(stack.run_dir)]
    assert events[-1:] == ["rollback_failed"] and "rollback" not in events
    # By hand: the same refusal, exit 3, and still no canary stopped.
    assert main(["rollback", "--run-dir", str(stack.run_dir)]) == 3
    assert "production does not answer" in capsys.readouterr().err
    assert stack.backend.is_healthy(after.canary)
