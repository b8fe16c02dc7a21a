"""Validation images and the option file copy written atomically.

BasicSR's ``imwrite`` (validation images) and ``copy_opt_file`` write in place, through any symbolic link found
at the target. :func:`install` makes them write with :func:`~oisr_basicsr.outputs.atomic_output` instead.
"""

import os
import sys
import time
from os import path as osp

import basicsr.train
import basicsr.utils
import basicsr.utils.img_util
import numpy as np
from basicsr.utils.dist_util import master_only

from ..outputs import atomic_output, write_image


def imwrite(img: np.ndarray, file_path: str, params: list[int] | None = None, auto_mkdir: bool = True) -> None:
    """BasicSR's ``imwrite``, written with :func:`~oisr_basicsr.outputs.write_image`.

    Args:
        img: The image, as ``cv2.imwrite`` takes it.
        file_path: Where to write it; a symbolic link there is refused.
        params: ``cv2.imwrite``'s parameters.
        auto_mkdir: Make the parent folder first.
    """
    if auto_mkdir:
        os.makedirs(osp.dirname(osp.abspath(file_path)), exist_ok=True)
    write_image(file_path, img, params)


@master_only
def copy_opt_file(opt_file: str, experiments_root: str) -> None:
    """BasicSR's ``copy_opt_file`` (the option file, with the time and the command line on top), written
    atomically on rank 0.

    Args:
        opt_file: The option file the run was started with.
        experiments_root: The experiment folder it is copied into.
    """
    with open(opt_file, encoding='utf-8') as file:
        text = file.read()
    header = f'# GENERATE TIME: {time.asctime()}\n# CMD:\n# {" ".join(sys.argv)}\n\n'
    with atomic_output(osp.join(experiments_root, osp.basename(opt_file))) as file:
        file.write((header + text).encode('utf-8'))


def install() -> None:
    """Replace BasicSR's ``imwrite`` wherever BasicSR holds it, and the trainer's ``copy_opt_file``."""
    original_imwrite = basicsr.utils.img_util.imwrite
    # The models import it by name (``from basicsr.utils import imwrite``): replace every such reference.
    for module in [basicsr.utils, basicsr.utils.img_util, *(m for name, m in list(sys.modules.items())
                                                              if name.startswith('basicsr.') and m is not None)]:
        if getattr(module, 'imwrite', None) is original_imwrite:
            module.imwrite = imwrite
    basicsr.train.copy_opt_file = copy_opt_file
