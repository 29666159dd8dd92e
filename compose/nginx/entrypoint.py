"""Entry point of the compose NGINX container: render the main template, then exec nginx.

The mounted template (the repository's nginx/nginx.canary.conf, or compose/nginx/nginx.production.conf)
uses upper-case ``${NAME}`` placeholders, as canary_harness.traffic.render expects; they come from the
environment (NGINX_HOST, NGINX_PORT, NGINX_WORKER_PROCESSES, NGINX_GROUP_HEADER). The image points nginx's
compiled-in prefix and configuration path into /tmp/nginx (see the Dockerfile), so relative paths of the template
(pid, logs, temp) live there, logs/ being /var/log/nginx, and conf.d/ is the mounted /etc/nginx/conf.d.
Arguments replace the final command line (default: ``nginx``).
"""

import os
import re
import sys
from pathlib import Path

TEMPLATE = Path(os.environ.get("NGINX_TEMPLATE", "/etc/nginx/templates/nginx.conf"))
PREFIX = Path("/tmp/nginx")
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def values() -> dict[str, str]:
    """The placeholder values, from the container's environment."""
    port = os.environ.get("NGINX_PORT", "8080")
    if not (port.isdigit() and 0 < int(port) < 65536):
        sys.exit(f"canary-nginx: NGINX_PORT={port!r} is not a port in 1..65535")
    return {
        "LISTEN_HOST": os.environ.get("NGINX_HOST", "127.0.0.1"),
        "LISTEN_PORT": port,
        "WORKER_PROCESSES": os.environ.get("NGINX_WORKER_PROCESSES", "auto"),
        # The group header of the canary file's access log (canary_harness.traffic.render's default), as
        # nginx's variable suffix: X-LLM-Mode -> x_llm_mode ($http_x_llm_mode, $upstream_http_x_llm_mode).
        "GROUP_HEADER": os.environ.get("NGINX_GROUP_HEADER", "X-LLM-Mode").lower().replace("-", "_"),
        # Root in the container: workers run as nginx's default unprivileged user.
        "USER_DIRECTIVE": "# (workers: nginx's default user)",
    }


def render() -> None:
    """Write the rendered configuration into the prefix and lay the prefix out."""
    text = TEMPLATE.read_text()
    table = values()
    missing = sorted(set(PLACEHOLDER.findall(text)) - set(table))
    if missing:
        sys.exit(f"canary-nginx: {TEMPLATE}: no value for placeholder(s) {', '.join(missing)}")
    (PREFIX / "temp").mkdir(parents=True, exist_ok=True)
    logs = PREFIX / "logs"
    if not logs.is_symlink():
        logs.symlink_to("/var/log/nginx")
    conf = PREFIX / "nginx.conf"
    conf.write_text(PLACEHOLDER.sub(lambda match: table[match.group(1)], text))


def main() -> None:
    """Render, then replace this process with nginx (PID 1 of the container gets the signals)."""
    render()
    argv = sys.argv[1:] or ["nginx"]
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
