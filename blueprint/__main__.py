"""``python -m blueprint`` (and ``torchrun -m blueprint``): the same command as ``blueprint``."""

import sys

from blueprint.cli import main

sys.exit(main())
