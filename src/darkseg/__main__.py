"""``python -m darkseg``: the ``darkseg`` command."""

import sys

from darkseg.cli import main

sys.exit(main())
