"""``python -m oisr_cli <subcommand>``: the ``oisr`` command without its console script."""

import sys

from .main import main

sys.exit(main())
