"""The classic runbook's `python scripts/smoke_test_api.py`, as a thin wrapper over `canary smoke`.

    python scripts/smoke_test_api.py [--canary]

Every argument passes through unchanged; the output and the exit code are the command's own.
"""

import sys

from canary_harness.cli import main

if __name__ == "__main__":
    sys.exit(main(["smoke", *sys.argv[1:]]))
