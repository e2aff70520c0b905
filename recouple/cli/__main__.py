"""Run the command line as ``python -m recouple.cli``."""

import sys

from . import main

sys.exit(main())
