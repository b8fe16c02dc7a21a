"""The visual comparison of ``oisr compare --figure IMAGE:X,Y,SIZE``, in the layout SR papers use.

Per request: the HR image on the left with the box drawn on it, and on the right, in a grid, the box's pixels
of the HR image, of bicubic and of every model, each zoomed with nearest-neighbour by the same integer factor
and captioned with its name and the whole image's PSNR / SSIM (the per-image values of the comparison's
metrics). X and Y are the box's top-left corner and SIZE its side, in HR pixels; IMAGE is a file of one of the
compared datasets, by name (``baby.png``), stem (``baby``) or ``DATASET/NAME`` where several datasets hold it.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..data.benchmark_hr_dataset import list_hr_images
from ..errors import FigureRequestError
from ..images import read_image_header
from ..outputs import DEFAULT_RULES, OutputRules, atomic_output, output_in

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURE_REQUEST_FORMAT = 'IMAGE:X,Y,SIZE'
# Zoomed crops are at least this many pixels wide: a 32-pixel box becomes 6x6 blocks per pixel.
MIN_ZOOMED_SIZE = 192
DPI = 100
# Pixels of the layout: outer margin, gap between tiles, height of a two-line caption under a tile.
MARGIN, GAP, CAPTION = 8, 10, 40
FONT_SIZE = 9
BOX_COLOR = 'red'


class ScoredModel(Protocol):
    """What the figure and the report read of a compared model (``compare.ModelResult`` is one): its name,
    its PSNR / SSIM per dataset and image, and its pixels in each box."""

    label: str
    per_image: dict[str, dict[str, tuple[float, float]]]
    crops: dict['CropBox', np.ndarray]


@dataclass(frozen=True)
class CropBox:
    """One ``--figure`` request, resolved to an image of a compared dataset.

    Args:
        request: The request as given (``baby:100,120,48``).
        dataset: The dataset's name in the comparison.
        path: The HR image file.
        x: Left column of the box, in HR pixels.
        y: Top row of the box.
        size: Side of the square box.
        height: The HR image's height in pixels.
        width: Its width.
    """

    request: str
    dataset: str
    path: Path
    x: int
    y: int
    size: int
    height: int
    width: int

    @property
    def image(self) -> str:
        """The HR file's name, the key of the per-image values."""
        return self.path.name

    @property
    def stem(self) -> str:
        """The figure files' name without suffix: dataset, image and box."""
        return f'figure_{self.dataset}_{self.path.stem}_{self.x}_{self.y}_{self.size}'

    def cut(self, image: np.ndarray) -> np.ndarray:
        """The box's pixels of ``image`` (an HR-sized array, any channels)."""
        return image[self.y:self.y + self.size, self.x:self.x + self.size]

    def check_inside(self, height: int, width: int, what: str) -> None:
        """Refuse a box that is not wholly inside a ``height`` x ``width`` image, named ``what``.

        Raises:
            FigureRequestError: naming the request, the box and the image's size.
        """
        if self.x + self.size > width or self.y + self.size > height:
            raise FigureRequestError(
                f'--figure {self.request}: the {self.size}x{self.size} box at x={self.x}, y={self.y} reaches '
                f'x={self.x + self.size}, y={self.y + self.size}, outside {what} ({width}x{height} pixels)')

    def check_modcrop(self, multiple: int, measured_by: str) -> None:
        """Refuse a box outside what a model's result covers: the image cropped at the bottom and right to a
        multiple of ``multiple`` (the dataset's ``modcrop``, by default the scale), by ``measured_by``."""
        self.check_inside(self.height // multiple * multiple, self.width // multiple * multiple,
                          f'{self.image} cropped to a multiple of {multiple}, as {measured_by} measures it')


def parse_figure_request(request: str) -> tuple[str, int, int, int]:
    """``IMAGE:X,Y,SIZE`` as ``(image, x, y, size)``.

    Raises:
        FigureRequestError: the text is not of that form, a number is negative or SIZE is not positive.
    """
    image, _, numbers = request.rpartition(':')
    parts = numbers.split(',')
    if not image or len(parts) != 3 or not all(part.strip().lstrip('-').isdecimal() for part in parts):
        raise FigureRequestError(f'--figure {request!r}: expected {FIGURE_REQUEST_FORMAT} (an image and its box\'s '
                                 'left column, top row and side in HR pixels), for example baby.png:100,120,48')
    x, y, size = (int(part) for part in parts)
    if size <= 0:
        raise FigureRequestError(f'--figure {request}: SIZE is {size}; the box\'s side must be at least 1 pixel')
    if x < 0 or y < 0:
        raise FigureRequestError(f'--figure {request}: X and Y are the box\'s top-left corner in the image and '
                                 'cannot be negative')
    return image, x, y, size


def _find_image(request: str, image: str, datasets: dict[str, Path]) -> tuple[str, Path]:
    dataset_name, _, file_name = image.rpartition('/')
    if dataset_name and dataset_name not in datasets:
        raise FigureRequestError(f'--figure {request}: {dataset_name} is not one of the compared datasets '
                                 f'({", ".join(datasets)})')
    searched = {dataset_name: datasets[dataset_name]} if dataset_name else datasets
    matches = [(name, Path(path)) for name, folder in searched.items()
               for path in list_hr_images(folder, f'dataset {name}')
               if file_name in (Path(path).name, Path(path).stem)]
    if not matches:
        raise FigureRequestError(f'--figure {request}: no image named {file_name} in {", ".join(searched)}')
    if len(matches) > 1:
        found = ', '.join(f'{name}/{path.name}' for name, path in matches)
        raise FigureRequestError(f'--figure {request}: {file_name} names {len(matches)} images ({found}); '
                                 'give one of them as DATASET/NAME')
    return matches[0]


def resolve_figure_requests(requests: Sequence[str], datasets: dict[str, Path]) -> list[CropBox]:
    """Each ``--figure`` request as a box in one HR image, checked to lie inside the image.

    Args:
        requests: ``IMAGE:X,Y,SIZE`` texts (see the module docstring).
        datasets: The compared datasets' HR folders by name.

    Returns:
        The boxes in request order, a repeated request once.

    Raises:
        FigureRequestError: a request that is malformed, names no single image, or boxes pixels outside it.
    """
    boxes = []
    for request in requests:
        image, x, y, size = parse_figure_request(request)
        dataset, path = _find_image(request, image, datasets)
        # The size is all a box needs; the pixels are checked with the dataset's other images before any work.
        header = read_image_header(path)
        box = CropBox(request, dataset, path, x, y, size, header.height, header.width)
        box.check_inside(box.height, box.width, path.name)
        if all((b.dataset, b.path, b.x, b.y, b.size) != (dataset, path, x, y, size) for b in boxes):
            boxes.append(box)
    return boxes


@dataclass
class Panel:
    """One tile of the grid.

    Args:
        label: The model's name (``HR`` for the ground truth).
        crop: The box's pixels at HR resolution, uint8, RGB (``H x W x 3``) or gray (``H x W``).
        caption: The line under the label: ``PSNR / SSIM`` of the whole image.
    """

    label: str
    crop: np.ndarray
    caption: str


def _display(image: np.ndarray) -> np.ndarray:
    """An 8-bit result as tensor2img gives it (BGR, or one channel) in the RGB or gray order matplotlib draws."""
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    return image[..., ::-1] if image.ndim == 3 else image


def figure_panels(box: CropBox, hr: np.ndarray, results: Sequence[ScoredModel]) -> list[Panel]:
    """The HR crop, then each result's crop with its per-image PSNR / SSIM.

    Args:
        box: The request.
        hr: The HR image, BGR uint8 as OpenCV reads it.
        results: Models measured with ``box`` among their boxes (bicubic first, as papers order them).
    """
    panels = [Panel('HR', _display(box.cut(hr)), 'PSNR / SSIM')]
    for result in results:
        psnr, ssim = result.per_image[box.dataset][box.image]
        panels.append(Panel(result.label, _display(result.crops[box]), f'{psnr:.2f} / {ssim:.4f}'))
    return panels


def zoom_factor(size: int) -> int:
    """The integer nearest-neighbour factor that makes a ``size``-pixel crop at least MIN_ZOOMED_SIZE wide."""
    return max(1, math.ceil(MIN_ZOOMED_SIZE / size))


def draw_figure(box: CropBox, hr: np.ndarray, panels: Sequence[Panel]) -> 'Figure':
    """The figure: HR on the left with the box, the panels' crops zoomed in a grid on the right.

    Every axis's image is the exact array drawn (``ax.get_images()[0].get_array()``), and its x label is
    ``label`` and ``caption`` on two lines; the HR axis comes first.

    Args:
        box: The request.
        hr: The HR image, BGR uint8.
        panels: The tiles (see :func:`figure_panels`).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    zoom = zoom_factor(box.size)
    tile = zoom * box.size
    rows = 1 if len(panels) <= 3 else 2
    columns = math.ceil(len(panels) / rows)
    grid_height = rows * (tile + CAPTION) + (rows - 1) * GAP
    # The HR image is as tall as the grid, its caption level with the bottom row's.
    hr_height = grid_height - CAPTION
    hr_width = round(hr_height * hr.shape[1] / hr.shape[0])
    width = 2 * MARGIN + hr_width + GAP + columns * tile + (columns - 1) * GAP
    height = 2 * MARGIN + grid_height
    # A Figure without pyplot: nothing global to close, and it draws the same on any backend.
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)

    def axes_at(left: int, top: int, box_width: int, box_height: int):
        ax = fig.add_axes((left / width, 1 - (top + box_height) / height, box_width / width, box_height / height))
        ax.set_xticks([])
        ax.set_yticks([])
        return ax

    hr_ax = axes_at(MARGIN, MARGIN, hr_width, hr_height)
    hr_ax.imshow(hr[..., ::-1], interpolation='antialiased')
    hr_ax.add_patch(Rectangle((box.x - 0.5, box.y - 0.5), box.size, box.size, fill=False, edgecolor=BOX_COLOR,
                              linewidth=1.5))
    hr_ax.set_xlabel(f'{box.dataset}/{box.image}\n({box.x}, {box.y}), {box.size}x{box.size}', fontsize=FONT_SIZE)
    grid_left = MARGIN + hr_width + GAP
    for index, panel in enumerate(panels):
        row, column = divmod(index, columns)
        ax = axes_at(grid_left + column * (tile + GAP), MARGIN + row * (tile + CAPTION + GAP), tile, tile)
        zoomed = panel.crop.repeat(zoom, axis=0).repeat(zoom, axis=1)
        # The gray map and its fixed range apply to one-channel (Y) results only; RGB arrays are drawn as they are.
        ax.imshow(zoomed, interpolation='nearest', cmap='gray', vmin=0, vmax=255)
        ax.set_xlabel(f'{panel.label}\n{panel.caption}', fontsize=FONT_SIZE)
    return fig


def figure_paths(output_dir: Path, box: CropBox) -> dict[str, Path]:
    """Where the figure of ``box`` goes: ``<box.stem>.png`` and ``.pdf`` in ``output_dir``, by format (a dataset
    name that would lead outside ``output_dir`` is refused)."""
    return {file_format: output_in(output_dir, f'{box.stem}.{file_format}') for file_format in ('png', 'pdf')}


def write_figure(fig: 'Figure', output_dir: Path, box: CropBox, rules: OutputRules = DEFAULT_RULES) -> dict[str, Path]:
    """The figure as ``<box.stem>.png`` and ``.pdf`` in ``output_dir``, each written atomically under the run's
    ``rules``.

    Returns:
        The paths by format (``png``, ``pdf``).
    """
    paths = figure_paths(output_dir, box)
    for file_format, path in paths.items():
        with atomic_output(path, rules) as file:
            fig.savefig(file, format=file_format, dpi=DPI)
    return paths
