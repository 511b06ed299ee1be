"""``python -m emofuse``: the ``emofuse`` command."""

import sys

from emofuse.cli import main

sys.exit(main())
