"""The option templates: the paper's recipes and test protocols as BasicSR option files.

The ``*.yml`` files here are package data, served by ``oisr options list`` / ``oisr options copy``; they equal
the repository's ``options/``. Both are written by :mod:`.oisr_recipes` (OISR, from the model table) and
:mod:`.nodesr_recipes` (NODE-SR), from the sections the two share (:mod:`.sections`); a test keeps them in sync.
"""
