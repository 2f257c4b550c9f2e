"""``python -m blueprint``: the same as the ``blueprint`` command."""

import sys

from blueprint.cli import main

sys.exit(main())
