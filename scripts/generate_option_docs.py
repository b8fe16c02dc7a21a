"""Write docs/options.md, every option key the package accepts, and the JSON Schema of option files the package
ships (``--check``: exit 1 if either is out of date).

    python scripts/generate_option_docs.py [--check]

The logic is :mod:`oisr_basicsr.options.reference_page` and :mod:`oisr_basicsr.options.json_schema`.
"""

import sys
from pathlib import Path

from oisr_basicsr.options import json_schema, reference_page

if __name__ == '__main__':
    sys.exit(reference_page.main(repository=Path(__file__).resolve().parents[1]) or json_schema.main())
