"""Entrypoint of the canary workers of docker-compose.canary.yml (worker-llm-canary, worker-rl-canary).

Runs ``fragrance-ai worker $WORKER_ROLE`` from the canary's image, with the arguments given after it. With
host networking every replica of a scaled service needs a port of its own: this takes the first port from
``$WORKER_PORT`` up that is free and that no other replica has claimed. The claim is an abstract Unix socket
named after the port, held as long as the worker runs: abstract sockets belong to the network namespace,
which the replicas share on the host network, so two replicas started at the same moment never pick the
same port. The port is recorded in /tmp/worker.port (the healthcheck and the harness read it), and with
``$WORKER_LOG_DIR`` the worker's JSON log is ``$WORKER_LOG_DIR/canary-worker-<role>-<port>.jsonl``.
SIGTERM/SIGINT go to the worker; its exit code is this one's.
"""

import os
import signal
import socket
import subprocess
import sys

ROLE = os.environ.get("WORKER_ROLE", "llm")
BASE_PORT = int(os.environ.get("WORKER_PORT", "8101"))
LOG_DIR = os.environ.get("WORKER_LOG_DIR", "")
PORT_FILE = "/tmp/worker.port"
MAX_REPLICAS = 32


def is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def claim(port: int) -> socket.socket | None:
    """The claim on ``port`` among the replicas (kept open while the worker runs), None if another holds it."""
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lock.bind(f"\0canary-worker-port-{port}")
    except OSError:
        lock.close()
        return None
    return lock


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
        lock = claim(port)
        if lock is None:
            continue
        if not is_free(port):  # taken by something else than a replica
            lock.close()
            continue
        with open(PORT_FILE, "w") as handle:
            handle.write(str(port))
        child = start(port)
        code = child.wait()
        lock.close()
        return code
    print(f"run_worker: no free port in {BASE_PORT}..{BASE_PORT + MAX_REPLICAS - 1}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
