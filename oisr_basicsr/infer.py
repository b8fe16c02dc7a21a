"""``python -m oisr_basicsr.infer``: the earlier name of ``oisr infer`` (:mod:`oisr_basicsr.tools.infer`), kept so that
existing commands keep working."""

import sys

from .tools.infer import main

if __name__ == '__main__':
    sys.exit(main())
