"""The classic runbook's `python scripts/canary_deployment.py`, as a thin wrapper over `canary rollout`.

    python scripts/canary_deployment.py --version V [--observation-period S] [--stages 1,10,50,100] [--dry-run]

Every argument passes through unchanged; the output and the exit code are the command's own.
"""

import sys

from canary_harness.cli import main

if __name__ == "__main__":
    sys.exit(main(["rollout", *sys.argv[1:]]))
