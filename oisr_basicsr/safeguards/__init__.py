"""What this package changes in BasicSR 1.4.2's training and test pipelines, installed only on request.

``import oisr_basicsr`` leaves BasicSR's behaviour as it is. :func:`install_basicsr_safeguards` (which
``oisr train``, ``oisr test`` and ``python -m oisr_basicsr.train`` / ``.test`` call) changes it for every
BasicSR model in the process, one concern per module:

- :mod:`.resume`: ``--auto_resume`` and ``path.resume_state`` load safely on any device, skip a truncated
  latest state, and the resumed run continues exactly (random generators, position in the epoch).
- :mod:`.checkpoint_io`: networks and training states are saved atomically (``.pth`` or ``.safetensors``,
  with every rank's random generators) and loaded without running code, non-finite weights refused.
- :mod:`.distributed`: NCCL or gloo with the local rank's device, a bounded process-group start that survives
  torchrun's restarts (:mod:`oisr_basicsr.cluster`), DDP on the CPU, tensorboard on rank 0.
- :mod:`.validation`: a distributed run validates without deadlocking its ranks.
- :mod:`.loss_check`: a NaN or infinite loss stops training, naming the iteration and the last good state.
- :mod:`.image_errors`: an unreadable training image is named.
- :mod:`.output_writes`: validation images and the option file copy are written atomically.
- :mod:`.experiment_dirs`: ``path.trust_checkpoints`` is not taken for a folder.
"""

from . import checkpoint_io, distributed, experiment_dirs, image_errors, loss_check, output_writes, resume, validation

# Several wrap BasicSR's functions as they find them: installed twice, they would wrap their own wrappers.
_CONCERNS = (resume, checkpoint_io, distributed, validation, loss_check, image_errors, output_writes, experiment_dirs)
_installed = False


def install_basicsr_safeguards() -> None:
    """Make BasicSR's training and test pipelines safe to kill, resume and run distributed, for every BasicSR
    model in this process (see the module docstring). Call it once before building a model or running
    ``basicsr.train.train_pipeline`` / ``basicsr.test.test_pipeline``; later calls change nothing."""
    global _installed
    if _installed:
        return
    for concern in _CONCERNS:
        concern.install()
    _installed = True
