"""Run ``oisr_basicsr.train`` (alone or under a distributed launcher) with hooks that tests need.

Environment variables, all optional:

* ``WEIGHTS_OUT``: write every rank's final network to ``$WEIGHTS_OUT/rank<r>.pth`` (only rank 0 saves
  checkpoints, so the test could not compare the replicas otherwise).
* ``PAUSE_AT_ITER`` and ``PAUSE_MARKER``: after that iteration's update, write the process id to
  ``<PAUSE_MARKER>.rank<r>`` and wait to be killed, so that a test can ``kill -9`` the run at a known point
  instead of racing it.
* ``NAN_AT_ITER`` and ``NAN_RANK``: that rank's pixel loss is NaN at that iteration.
"""

import os
import time
from pathlib import Path

import torch

import oisr_basicsr.train  # the import shims before BasicSR's first import; main() installs the safeguards

# isort: split
import basicsr.train

RANK = int(os.environ.get('RANK', 0))
built_models = []
build_model = basicsr.train.build_model


def with_test_hooks(model):
    optimize_parameters = model.optimize_parameters
    pause_at = int(os.environ.get('PAUSE_AT_ITER', -1))
    nan_at = int(os.environ.get('NAN_AT_ITER', -1)) if RANK == int(os.environ.get('NAN_RANK', 0)) else -1

    def optimize(current_iter: int) -> None:
        pixel_loss = model.cri_pix
        if current_iter == nan_at:
            model.cri_pix = lambda *args: pixel_loss(*args) * float('nan')
        optimize_parameters(current_iter)
        model.cri_pix = pixel_loss
        if current_iter == pause_at:
            Path(f'{os.environ["PAUSE_MARKER"]}.rank{RANK}').write_text(str(os.getpid()))
            time.sleep(3600)

    model.optimize_parameters = optimize
    return model


def build_and_keep(opt):
    built_models.append(with_test_hooks(build_model(opt)))
    return built_models[-1]


basicsr.train.build_model = build_and_keep
oisr_basicsr.train.main()
if 'WEIGHTS_OUT' in os.environ:
    model = built_models[0]
    weights = model.get_bare_model(model.net_g).state_dict()
    torch.save(weights, os.path.join(os.environ['WEIGHTS_OUT'], f'rank{RANK}.pth'))
