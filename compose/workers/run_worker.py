"""Entrypoint of the canary workers of docker-compose.canary.yml (worker-llm-canary, worker-rl-canary).

Runs ``fragrance-ai worker $WORKER_ROLE`` from the canary's image, with the arguments given after it. With
host networking every replica of a scaled service needs a port of its own: this takes the first port from
``$WORKER_PORT`` up that is free; a replica that started at the same moment and lost the port to another
(its worker exits before answering /health while the port is taken) tries the next one. The port is
recorded in /tmp/worker.port (the healthcheck and the harness read it), and with ``$WORKER_LOG_DIR`` the
worker's JSON log is ``$WORKER_LOG_DIR/canary-worker-<role>-<port>.jsonl``. SIGTERM/SIGINT go to the
worker; its exit code is this one's.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROLE = os.environ.get("WORKER_ROLE", "llm")
BASE_PORT = int(os.environ.get("WORKER_PORT", "8101"))
LOG_DIR = os.environ.get("WORKER_LOG_DIR", "")
PORT_FILE = "/tmp/worker.port"
MAX_REPLICAS = 32
START_TIMEOUT_S = 60.0


def is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def answers(port: int) -> bool:
    """True once /health on ``port`` answers (the worker bound it)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return isinstance(json.load(response), dict)
    except (OSError, ValueError):
        return False


def start(port: int) -> subprocess.Popen[bytes]:
    """The worker on ``port``, with this entrypoint's arguments."""
    argv = ["fragrance-ai", "worker", ROLE, "--host", "127.0.0.1", "--port", str(port), *sys.argv[1:]]
    if LOG_DIR:
        argv += ["--log-file", f"{LOG_DIR}/canary-worker-{ROLE}-{port}.jsonl"]
    return subprocess.Popen(argv)


def main() -> int:
    """Find a port, run the worker there until it ends."""
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for port in range(BASE_PORT, BASE_PORT + MAX_REPLICAS):
        if not is_free(port):
            continue
        with open(PORT_FILE, "w") as handle:
            handle.write(str(port))
        child = start(port)
        deadline = time.monotonic() + START_TIMEOUT_S
        while child.poll() is None and not answers(port) and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the child's health: the condition is checked each round
        if child.poll() is None or is_free(port):
            return child.wait()  # running (or it failed for another reason than the port: its code)
        # Another replica took this port first: try the next one.
    print(f"run_worker: no free port in {BASE_PORT}..{BASE_PORT + MAX_REPLICAS - 1}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
