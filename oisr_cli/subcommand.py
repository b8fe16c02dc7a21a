"""One ``oisr`` subcommand: its name, one-line summary and the module whose ``main(argv)`` runs it."""

import importlib
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Subcommand:
    """A subcommand of ``oisr``, imported only when it runs.

    Args:
        name: The word after ``oisr``.
        summary: One line for ``oisr --help``.
        module: The module (under ``oisr_basicsr``) whose ``main(argv)`` parses the rest of the command line and
            returns the exit status (None counts as 0); its own ``--help`` explains it, with examples.
    """

    name: str
    summary: str
    module: str

    def run(self, argv: Sequence[str]) -> int:
        """Import the module and run its ``main`` on ``argv``; returns the exit status."""
        status = importlib.import_module(self.module).main(list(argv))
        return 0 if status is None else status
