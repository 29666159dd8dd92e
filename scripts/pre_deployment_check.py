"""The classic runbook's `python scripts/pre_deployment_check.py`, as a thin wrapper over `canary precheck`.

    python scripts/pre_deployment_check.py --version V [--strict]

Every argument passes through unchanged; the output and the exit code are the command's own.
"""

import sys

from canary_harness.cli import main

if __name__ == "__main__":
    sys.exit(main(["precheck", *sys.argv[1:]]))
