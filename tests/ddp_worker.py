"""Run ``oisr_basicsr.train`` under a distributed launcher and keep each rank's final weights.

Only rank 0 saves checkpoints, so this wrapper writes every rank's network to
``$WEIGHTS_OUT/rank<r>.pth`` for the test to compare.
"""

import os

import torch

import oisr_basicsr.train  # the package patches BasicSR before BasicSR's first import

# isort: split
import basicsr.train

built_models = []
build_model = basicsr.train.build_model


def build_and_keep(opt):
    built_models.append(build_model(opt))
    return built_models[-1]


basicsr.train.build_model = build_and_keep
oisr_basicsr.train.main()
model = built_models[0]
weights = model.get_bare_model(model.net_g).state_dict()
torch.save(weights, os.path.join(os.environ['WEIGHTS_OUT'], f'rank{os.environ["RANK"]}.pth'))
