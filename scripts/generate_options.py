"""Write the OISR option files in options/ (``--check``: exit 1 if out of date).

    python scripts/generate_options.py [--check]

The logic is :mod:`oisr_basicsr.templates.oisr_recipes`.
"""

import sys
from pathlib import Path

from oisr_basicsr.templates.oisr_recipes import main

if __name__ == '__main__':
    sys.exit(main(repository=Path(__file__).resolve().parents[1]))
