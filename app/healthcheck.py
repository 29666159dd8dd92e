"""HEALTHCHECK of the fragrance-ai image: GET /health on the port the service was started with.

The image has no curl, so this is Python's urllib. The port is read from the service's own command line
(``fragrance-ai --host 127.0.0.1 --port N``: PID 1, or another process when an init runs as PID 1),
because host networking lets every container choose its port at run time. Exit 0 when /health answers
200 with status "healthy", else 1.
"""

import json
import os
import sys
import urllib.request


def _port_of(argv: list[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg == "--port" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--port="):
            return arg.split("=", 1)[1]
    return None


def service_port(default: str = "8001") -> str:
    """The ``--port`` of the service's process (PID 1 first), else the image's default."""
    pids = ["1", *sorted((name for name in os.listdir("/proc") if name.isdigit() and name != "1"), key=int)]
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any("fragrance-ai" in arg or "fragrance_ai" in arg for arg in argv):
            return _port_of(argv) or default
    return default


def main() -> int:
    url = f"http://127.0.0.1:{service_port()}/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            body = json.loads(response.read())
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}")
        return 1
    if body.get("status") != "healthy":
        print(f"unhealthy: {url} answered {body}")
        return 1
    print(f"healthy: {url} version {body.get('version')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
