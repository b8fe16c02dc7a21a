"""``python -m oisr_basicsr.quickstart``: the earlier name of ``oisr quickstart``
(:mod:`oisr_basicsr.tools.quickstart`), kept so that existing commands keep working."""

import sys

if __name__ == '__main__':
    from oisr_cli.commands.quickstart import main  # the command line is the `oisr` command's

    sys.exit(main())
