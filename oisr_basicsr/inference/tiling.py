"""Super-resolve an image tile by tile, so that memory is bounded by the tile size, not the image size.

Each tile the network sees is ``tile`` LR pixels wide (less where the image is smaller) and carries
``overlap`` pixels of context on every side that touches another tile. Only the tile's core is kept;
the context is thrown away, not blended. A convolutional network whose receptive field reaches at
most ``overlap`` LR pixels from its centre therefore gives exactly the untiled output (up to
floating-point summation order), because every kept output pixel saw all the input it depends on.
Zero padding at a tile edge that is an image edge is the network's own padding, so it is right too.
"""

from collections.abc import Callable

import torch
from tqdm import tqdm


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Windows and kept cores of the tiles along one axis.

    Windows are ``tile`` long (the last one is moved back to end at the image edge, so only an axis
    shorter than ``tile`` gives a shorter window). Cores partition ``[0, length)``; each core lies
    at least ``overlap`` pixels inside its window, except where the window reaches the image edge.

    Args:
        length: Size of the axis in LR pixels.
        tile: Window size in LR pixels; must exceed ``2 * overlap``.
        overlap: Context in LR pixels kept on each inner side of a core.

    Returns:
        ``(window_start, window_end, core_start, core_end)`` per tile, in order.
    """
    if length < 1:
        raise ValueError(f'length must be positive, got {length}')
    if overlap < 0:
        raise ValueError(f'tile overlap must be non-negative, got {overlap}')
    if tile <= 2 * overlap:
        raise ValueError(f'tile ({tile}) must be larger than twice the tile overlap ({overlap}), '
                         f'or no pixel of a tile would be kept')
    spans = []
    core_start = 0
    while core_start < length:
        window_start = max(0, min(core_start - overlap, length - tile))
        window_end = min(window_start + tile, length)
        core_end = length if window_end == length else window_end - overlap
        spans.append((window_start, window_end, core_start, core_end))
        core_start = core_end
    return spans


def tiled_forward(forward: Callable[[torch.Tensor], torch.Tensor],
                  lq: torch.Tensor,
                  scale: int,
                  tile: int,
                  overlap: int,
                  device: torch.device | str | None = None,
                  progress: bool = False) -> torch.Tensor:
    """Run ``forward`` on ``lq`` tile by tile and assemble the output on ``lq``'s device.

    Args:
        forward: Maps an ``N x C x h x w`` tensor to ``N x C' x (scale*h) x (scale*w)``.
        lq: ``N x C x H x W`` input; it may stay on the CPU while ``forward`` runs elsewhere.
        scale: Integer upscaling factor of ``forward``.
        tile: Window size in LR pixels (see :func:`tile_spans`).
        overlap: Context in LR pixels on each inner side of a tile; at least the network's
            receptive-field radius for an output identical to the untiled one.
        device: Device each tile is moved to before ``forward``; ``None`` keeps ``lq``'s device.
        progress: Show a tqdm bar over the tiles.

    Returns:
        The ``N x C' x (scale*H) x (scale*W)`` output, as float32 on ``lq``'s device.
    """
    if lq.ndim != 4:
        raise ValueError(f'lq must be N x C x H x W, got shape {tuple(lq.shape)}')
    height, width = lq.shape[-2:]
    rows, cols = tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)
    output = None
    with tqdm(total=len(rows) * len(cols), desc='tiles', unit='tile', leave=False, disable=not progress) as bar:
        for y0, y1, top, bottom in rows:
            for x0, x1, left, right in cols:
                window = lq[..., y0:y1, x0:x1]
                result = forward(window if device is None else window.to(device))
                expected = ((y1 - y0) * scale, (x1 - x0) * scale)
                if tuple(result.shape[-2:]) != expected:
                    raise ValueError(f'a {y1 - y0}x{x1 - x0} tile gave a {result.shape[-2]}x{result.shape[-1]} '
                                     f'output, not {expected[0]}x{expected[1]}; is the scale {scale} right?')
                if output is None:
                    # The channel count of the output is known only after the first tile.
                    output = lq.new_zeros((lq.shape[0], result.shape[1], height * scale, width * scale),
                                          dtype=torch.float32)
                core = result[..., (top - y0) * scale:(bottom - y0) * scale, (left - x0) * scale:(right - x0) * scale]
                output[..., top * scale:bottom * scale, left * scale:right * scale] = core.float().to(output.device)
                bar.update()
    return output
