"""Pure parts of the canary's worker containers: their labels and the compose backend's extra file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from canary_harness.deploy.compose_workers import render_workers_override
from canary_harness.deploy.worker_containers import worker_labels
from canary_harness.deploy.workers import WorkerRecord


def test_worker_labels_name_component_version_run_dir_and_port(tmp_path: Path) -> None:
    labels = worker_labels(tmp_path, "rl", 2, "v0.2.0", 41234)
    assert labels == {
        "canary-harness.role": "canary-worker",
        "canary-harness.component": "worker-rl",
        "canary-harness.replica": "2",
        "canary-harness.version": "v0.2.0",
        "canary-harness.run-dir": str(tmp_path.resolve()),
        "canary-harness.port": "41234",
    }


def test_compose_override_names_the_environment_without_its_values(tmp_path: Path) -> None:
    env = {"FRAGRANCE_FAULTS": "loss_factor=4", "OPENAI_API_KEY": "sk-secret"}
    text = render_workers_override(("llm", "rl"), env, tmp_path / "run$dir")
    assert "sk-secret" not in text and "loss_factor" not in text
    services = json.loads(text)["services"]
    assert sorted(services) == ["worker-llm-canary", "worker-rl-canary"]
    rl = services["worker-rl-canary"]
    assert rl["environment"] == ["FRAGRANCE_FAULTS", "OPENAI_API_KEY", "WORKER_LOG_DIR=/canary-logs"]
    assert rl["volumes"] == [f"{(tmp_path / 'run$dir' / 'logs').resolve()}:/canary-logs"]
    assert rl["user"] == f"{os.getuid()}:{os.getgid()}"
    # docker-compose interpolates `$`: the label doubles it to keep the path literal.
    assert rl["labels"]["canary-harness.run-dir"] == str((tmp_path / "run$dir").resolve()).replace("$", "$$")


def test_worker_record_keeps_its_container_id_and_reads_old_records(tmp_path: Path) -> None:
    record = WorkerRecord("llm", 1, "v0.2.0", "http://127.0.0.1:1", 0, None, tmp_path / "a.log", tmp_path / "a.jsonl",
                          "c0ffee")  # fmt: skip
    assert WorkerRecord.from_json(record.to_json()) == record
    old = {key: value for key, value in record.to_json().items() if key != "container_id"}
    assert WorkerRecord.from_json(old).container_id is None
