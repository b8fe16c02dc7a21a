"""Experiment folders made of the ``path:`` values that are folders.

BasicSR's ``make_exp_dirs`` makes a folder of every ``path:`` value but a few it knows; this package's
``path.trust_checkpoints`` (a boolean) would crash every run that sets it (``os.makedirs(True)``).
"""

import basicsr.test
import basicsr.train


def install() -> None:
    """Make BasicSR's trainer and tester leave ``path.trust_checkpoints`` out of the folders they make."""
    make_exp_dirs = basicsr.train.make_exp_dirs

    def make_exp_dirs_of_paths(opt: dict) -> None:
        make_exp_dirs({**opt, 'path': {k: v for k, v in opt['path'].items() if k != 'trust_checkpoints'}})

    basicsr.train.make_exp_dirs = basicsr.test.make_exp_dirs = make_exp_dirs_of_paths
