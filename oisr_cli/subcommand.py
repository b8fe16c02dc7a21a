"""The base of every ``oisr`` subcommand: its parser, built without importing torch or BasicSR, and what runs it."""

import argparse
import sys
from collections.abc import Sequence

from .argument_types import ArgumentParser


class Subcommand:
    """One subcommand of ``oisr``, one module of :mod:`oisr_cli.commands` each.

    A subclass sets :attr:`name` and :attr:`summary` and defines :meth:`add_arguments` and :meth:`run`; the
    docstring of its module is its ``--help`` text, with examples. The parser is built from the standard library
    and :mod:`oisr_cli` alone, so that ``--help`` and a refused argument answer at once; :meth:`run` imports the
    package's tool (and with it torch and BasicSR) only when the command runs.
    """

    name: str
    summary: str

    @property
    def description(self) -> str:
        """The ``--help`` text: the docstring of the subclass's module."""
        return sys.modules[type(self).__module__].__doc__

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the subcommand's arguments to ``parser``."""
        raise NotImplementedError

    def run(self, args: argparse.Namespace) -> int | None:
        """Do the work of parsed ``args``; returns the exit status (None counts as 0)."""
        raise NotImplementedError

    def build_parser(self) -> argparse.ArgumentParser:
        """The subcommand's parser (``oisr NAME --help`` prints its help; a command-line error is one ``error:`` line
        with exit status 2)."""
        parser = ArgumentParser(prog=f'oisr {self.name}', description=self.description)
        self.add_arguments(parser)
        return parser

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Parse ``argv`` (``sys.argv[1:]`` when None) and run; returns the exit status."""
        status = self.run(self.build_parser().parse_args(argv))
        return 0 if status is None else status
