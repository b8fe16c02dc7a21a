"""The data-pipeline benchmark runs end to end and times both datasets and the parts of the NODE-SR item."""

import re

import cv2
import numpy as np
from conftest import smooth_image

from benchmarks import bench_data_pipeline as bench


def test_table_has_both_datasets_and_the_parts(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(tmp_path / f'img{i}.png'), smooth_image(rng, 300, 310))

    assert bench.main(['--hr-dir', str(tmp_path), '--samples', '3', '--rounds', '1']) == 0
    rows = dict(re.findall(r'^\| ([^|]+?) \| ([0-9.]+) \|', capsys.readouterr().out, re.MULTILINE))
    assert set(rows) == {'ContinuousScalePairedDataset', 'PairedImageDataset', '... read and decode',
                         '... crop and augment', '... I(t)', 'I(t) for a batch of 16 in one call, per sample'}
    assert all(float(ms) > 0 for ms in rows.values())
    # The parts are a split of the whole item, so together they cannot take much longer than it.
    parts = sum(float(rows[name]) for name in ('... read and decode', '... crop and augment', '... I(t)'))
    assert parts < 3 * float(rows['ContinuousScalePairedDataset'])


def test_missing_folder_is_an_error(tmp_path, capsys):
    assert bench.main(['--hr-dir', str(tmp_path / 'none')]) == 2
    assert f'--hr-dir {tmp_path / "none"} is not a folder' in capsys.readouterr().err
