"""``python -m recouple``: the ``recouple`` command."""

import sys

from .cli import main

sys.exit(main())
