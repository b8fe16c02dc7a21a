"""``python -m oisr_basicsr.infer``: the earlier name of ``oisr infer`` (:mod:`oisr_basicsr.tools.infer`), kept so that
existing commands keep working."""

import sys

if __name__ == '__main__':
    from oisr_cli.commands.infer import main  # the command line is the `oisr` command's

    sys.exit(main())
