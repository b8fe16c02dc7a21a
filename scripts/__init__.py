"""The developer scripts: the option-file generators and their shared parts.

Not part of the installed package. Run the generators as modules from the repository root, e.g.
``python -m scripts.generate_options --check``. ``install_basicsr.py`` runs by its path, before anything is installed.
"""
