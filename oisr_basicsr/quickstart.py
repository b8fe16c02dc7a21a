"""``python -m oisr_basicsr.quickstart``: the earlier name of ``oisr quickstart``
(:mod:`oisr_basicsr.tools.quickstart`), kept so that existing commands keep working."""

import sys

from .tools.quickstart import main

if __name__ == '__main__':
    sys.exit(main())
