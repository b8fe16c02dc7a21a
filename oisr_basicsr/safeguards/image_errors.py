"""Unreadable training images are named.

BasicSR's paired dataset dies on an unreadable or truncated image with ``'NoneType' object has no attribute
'astype'``. :func:`install` makes the option files' ``type: PairedImageDataset`` build :class:`PairedImageDataset`
below, which names the files.
"""

from basicsr.data import paired_image_dataset
from basicsr.utils.registry import DATASET_REGISTRY


class PairedImageDataset(paired_image_dataset.PairedImageDataset):
    """BasicSR's ``PairedImageDataset``, naming the image pair it cannot read.

    A subclass rather than a replaced method: DataLoader workers started by spawn (distributed runs) unpickle
    the dataset, which imports this module and so brings the behaviour along. It keeps BasicSR's class name,
    which BasicSR's log prints.
    """

    def __getitem__(self, index: int) -> dict:
        try:
            return super().__getitem__(index)
        except (AttributeError, TypeError, OSError) as error:
            paths = self.paths[index]
            raise OSError(f'Cannot read the image pair {paths["gt_path"]} and {paths["lq_path"]} '
                          f'(unreadable or truncated?): {error}') from error


def install() -> None:
    """Register :class:`PairedImageDataset` under BasicSR's name, in place of BasicSR's class."""
    # The registry refuses a second registration of a name; its map is the one place build_dataset looks.
    DATASET_REGISTRY._obj_map['PairedImageDataset'] = PairedImageDataset
