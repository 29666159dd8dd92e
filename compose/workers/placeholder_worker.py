"""Stand-in for the canary workers (worker-llm-canary, worker-rl-canary) of docker-compose.canary.yml.

The service has no worker processes yet; until it does, this keeps the runbook's worker commands honest:
it starts, answers ``GET /health`` on its own loopback port with its role and version, and exits 0 on
SIGTERM (``docker-compose stop``). With several replicas on host networking each takes the first free
port from WORKER_PORT upwards and records it in /tmp/worker.port for the healthcheck.
"""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = os.environ.get("WORKER_ROLE", "worker")
VERSION = os.environ.get("APP_VERSION", "dev")
PORT_FILE = "/tmp/worker.port"
MAX_REPLICAS = 32


class Health(BaseHTTPRequestHandler):
    """``/health`` only; everything else is 404."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path != "/health":
            self.send_error(404)
            return
        body = json.dumps({"status": "healthy", "role": ROLE, "version": VERSION, "placeholder": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server API
        print(json.dumps({"event": "request", "role": ROLE, "line": format % args}), flush=True)


def bind(first: int) -> ThreadingHTTPServer:
    """The server on the first free port from ``first`` (one per replica)."""
    for port in range(first, first + MAX_REPLICAS):
        try:
            return ThreadingHTTPServer(("127.0.0.1", port), Health)
        except OSError:
            continue
    sys.exit(f"{ROLE}: no free port in 127.0.0.1:{first}..{first + MAX_REPLICAS - 1}")


def main() -> None:
    """Serve until SIGTERM/SIGINT (PID 1 in a container ignores SIGTERM unless it has a handler)."""
    server = bind(int(os.environ.get("WORKER_PORT", "8101")))
    port = server.server_address[1]
    with open(PORT_FILE, "w") as handle:
        handle.write(str(port))

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps({"event": "started", "role": ROLE, "version": VERSION, "port": port}), flush=True)
    try:
        server.serve_forever()
    finally:
        print(json.dumps({"event": "stopped", "role": ROLE}), flush=True)


if __name__ == "__main__":
    main()
