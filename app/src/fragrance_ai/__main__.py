"""``python -m fragrance_ai``: the same as the ``fragrance-ai`` command."""

import sys

from fragrance_ai.cli import main

sys.exit(main())
