"""``comparison.html``: the comparison of ``oisr compare`` as one self-contained page.

It holds the table of ``comparison.md``, the PSNR-vs-MACs plot, each dataset's PSNR per image and model (the
best of each row in bold) and the ``--figure`` crops. Images are embedded as ``data:`` URIs, so the file can be
mailed or archived alone; it loads nothing from anywhere.
"""

import base64
import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .compare import ModelResult
    from .comparison_figure import CropBox

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1em 0; }
img { max-width: 100%; }
"""


def data_uri(png: bytes) -> str:
    """``png`` as a ``data:image/png;base64,...`` URI."""
    return 'data:image/png;base64,' + base64.b64encode(png).decode('ascii')


def _inline(text: str) -> str:
    """Markdown's inline code as ``<code>``, everything else escaped."""
    return re.sub(r'`([^`]+)`', r'<code>\1</code>', html.escape(text))


def _table(table_id: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table; cells are HTML already."""
    lines = [f'<table id="{table_id}">', '<tr>' + ''.join(f'<th>{cell}</th>' for cell in header) + '</tr>']
    lines += ['<tr>' + ''.join(f'<td>{cell}</td>' for cell in row) + '</tr>' for row in rows]
    return '\n'.join(lines + ['</table>'])


def per_image_table(results: Sequence['ModelResult'], dataset: str) -> str:
    """PSNR (dB) of every model on every image of ``dataset``, the best of each image in bold."""
    rows = []
    for image in results[0].per_image[dataset]:
        values = [result.per_image[dataset][image][0] for result in results]
        best = max(values)
        rows.append([html.escape(image)] + [f'<b>{value:.2f}</b>' if value == best else f'{value:.2f}'
                                            for value in values])
    return _table(f'per-image-{html.escape(dataset)}', ['Image', *(html.escape(r.label) for r in results)], rows)


def render_report(header: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str],
                  results: Sequence['ModelResult'], plot_png: bytes | None, plot_note: str | None,
                  figures: Sequence[tuple['CropBox', bytes]]) -> str:
    """The page.

    Args:
        header: The comparison table's header (``comparison.md``'s).
        rows: Its rows, plain text.
        notes: The lines under it (Markdown inline code allowed).
        results: The models, with their per-image values.
        plot_png: The PSNR-vs-MACs plot, or ``None``.
        plot_note: Why there is no plot, shown in its place.
        figures: Each ``--figure`` box and its PNG.
    """
    body = ['<h1>Model comparison</h1>',
            _table('comparison', [html.escape(cell) for cell in header],
                   [[html.escape(cell) for cell in row] for row in rows])]
    body += [f'<p>{_inline(note)}</p>' for note in notes if note]
    body.append('<h2>PSNR against MACs</h2>')
    body.append(f'<img id="plot" alt="PSNR against MACs" src="{data_uri(plot_png)}">' if plot_png is not None
                else f'<p>{html.escape(plot_note or "no plot")}</p>')
    for dataset in results[0].per_image:
        body += [f'<h2>{html.escape(dataset)}: PSNR per image (dB)</h2>', per_image_table(results, dataset)]
    if figures:
        body.append('<h2>Visual comparison</h2>')
    for box, png in figures:
        caption = html.escape(f'{box.dataset}/{box.image}, {box.size}x{box.size} box at x={box.x}, y={box.y}: '
                              'the box zoomed, with the whole image\'s PSNR (dB) / SSIM')
        body.append(f'<figure><img class="crops" alt="{html.escape(box.request)}" src="{data_uri(png)}">'
                    f'<figcaption>{caption}</figcaption></figure>')
    return '\n'.join(['<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
                      '<title>Model comparison</title>', f'<style>{STYLE}</style>', '</head>', '<body>', *body,
                      '</body>', '</html>', ''])
