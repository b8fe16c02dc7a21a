"""Write docs/options.md, every option key the package accepts (``--check``: exit 1 if out of date).

    python scripts/generate_option_docs.py [--check]

The logic is :mod:`oisr_basicsr.options.reference_page`.
"""

import sys
from pathlib import Path

from oisr_basicsr.options.reference_page import main

if __name__ == '__main__':
    sys.exit(main(repository=Path(__file__).resolve().parents[1]))
