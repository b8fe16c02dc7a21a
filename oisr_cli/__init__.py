"""The ``oisr`` command: one entry point for every tool of :mod:`oisr_basicsr`.

It is a package of its own, outside :mod:`oisr_basicsr`, because importing ``oisr_basicsr`` imports torch and
BasicSR and registers the package's classes, which takes seconds: ``oisr --help`` and every ``oisr <subcommand>
--help`` import nothing but this package and the standard library (each subcommand's parser is here, in
:mod:`oisr_cli.commands`), and a subcommand imports its tool only when it runs. The package never imports this one.
"""
