"""``python -m blueprint``: the same command as the ``blueprint`` entry point."""

import sys

from blueprint.cli import main

sys.exit(main())
