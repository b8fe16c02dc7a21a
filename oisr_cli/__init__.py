"""The ``oisr`` command: one entry point for every tool of :mod:`oisr_basicsr`.

It is a package of its own, outside :mod:`oisr_basicsr`, because importing ``oisr_basicsr`` imports torch and
BasicSR and registers the package's classes, which takes seconds; ``oisr --help`` imports nothing but this
package, and a subcommand imports its tool only when it runs.
"""
