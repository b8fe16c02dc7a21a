"""Run ``oisr_basicsr.train`` (alone or under a distributed launcher) with hooks that tests need.

Environment variables, all optional:

* ``WEIGHTS_OUT``: write every rank's final network to ``$WEIGHTS_OUT/rank<r>.pth`` (only rank 0 saves
  checkpoints, so the test could not compare the replicas otherwise).
* ``PAUSE_AT_ITER`` and ``PAUSE_MARKER``: after that iteration's update, write the process id to
  ``<PAUSE_MARKER>.rank<r>`` and wait to be killed, so that a test can ``kill -9`` the run at a known point
  instead of racing it. Only the ranks listed in ``PAUSE_RANKS`` (comma-separated; all when unset) pause, and only
  while their marker does not exist: a rank that a launcher restarts trains on.
* ``NAN_AT_ITER`` and ``NAN_RANK``: that rank's pixel loss is NaN at that iteration.
* ``SAMPLES_OUT``: append ``<iteration> <image name>`` for every training sample of rank r to
  ``$SAMPLES_OUT/rank<r>.txt``.
"""

import os
import time
from pathlib import Path

import torch

import oisr_basicsr.train  # the import shims before BasicSR's first import; main() installs the safeguards

# isort: split
import basicsr.train

built_models = []
build_model = basicsr.train.build_model


def with_test_hooks(model):
    # The rank as the run's options know it: a SLURM task learns its own only when the options are parsed.
    rank = model.opt['rank']
    optimize_parameters, feed_data = model.optimize_parameters, model.feed_data
    pause_ranks = os.environ.get('PAUSE_RANKS')
    pause_here = pause_ranks is None or str(rank) in pause_ranks.split(',')
    pause_at = int(os.environ.get('PAUSE_AT_ITER', -1)) if pause_here else -1
    nan_at = int(os.environ.get('NAN_AT_ITER', -1)) if rank == int(os.environ.get('NAN_RANK', 0)) else -1
    fed_images = []

    def feed(data: dict) -> None:
        fed_images[:] = [os.path.basename(path) for path in data.get('lq_path', [])]
        feed_data(data)

    def optimize(current_iter: int) -> None:
        pixel_loss = model.cri_pix
        if current_iter == nan_at:
            model.cri_pix = lambda *args: pixel_loss(*args) * float('nan')
        optimize_parameters(current_iter)
        model.cri_pix = pixel_loss
        if 'SAMPLES_OUT' in os.environ:
            with open(Path(os.environ['SAMPLES_OUT']) / f'rank{rank}.txt', 'a') as samples:
                samples.writelines(f'{current_iter} {image}\n' for image in fed_images)
        marker = Path(f'{os.environ.get("PAUSE_MARKER")}.rank{rank}')
        if current_iter == pause_at and not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(3600)

    model.feed_data, model.optimize_parameters = feed, optimize
    return model


def build_and_keep(opt):
    built_models.append(with_test_hooks(build_model(opt)))
    return built_models[-1]


basicsr.train.build_model = build_and_keep
oisr_basicsr.train.main()
if 'WEIGHTS_OUT' in os.environ:
    model = built_models[0]
    weights = model.get_bare_model(model.net_g).state_dict()
    torch.save(weights, os.path.join(os.environ['WEIGHTS_OUT'], f'rank{model.opt["rank"]}.pth'))
