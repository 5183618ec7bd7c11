"""``python -m edgedistill`` is the same as the ``edgedistill`` command."""

import sys

from edgedistill.cli import main

sys.exit(main())
