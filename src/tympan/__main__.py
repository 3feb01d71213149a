"""``python -m tympan``: the ``tympan`` command, for when the console script is not on PATH."""

import sys

from tympan.cli.app import main

sys.exit(main())
