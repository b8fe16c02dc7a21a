"""The README's quick start, start to finish: its small OISR model must beat bicubic."""

import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from oisr_basicsr.tools import quickstart


def _bicubic_psnr(gt_dir, lr_dir) -> float:
    """Mean Y-channel PSNR of MATLAB-bicubic x2 upsampling, computed here without the package."""
    from basicsr.metrics import calculate_psnr
    from basicsr.utils.matlab_functions import imresize

    values = []
    for gt_path in sorted(gt_dir.glob('*.png')):
        lr = cv2.imread(str(lr_dir / gt_path.name)).astype(np.float32) / 255.
        sr = np.clip(np.round(imresize(lr, 2) * 255), 0, 255)
        values.append(calculate_psnr(sr, cv2.imread(str(gt_path)), crop_border=2, test_y_channel=True))
    return float(np.mean(values))


@pytest.mark.slow
def test_quickstart_beats_bicubic(tmp_path):
    workdir = tmp_path / 'qs'
    result = subprocess.run([sys.executable, '-m', 'oisr_cli', 'quickstart', '--workdir', str(workdir)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = dict(re.findall(r'^\| (Bicubic|OISR-LF \(small\)) \| ([0-9.]+) \|', result.stdout, re.MULTILINE))
    assert set(rows) == {'Bicubic', 'OISR-LF (small)'}, result.stdout
    test_data = workdir / 'data' / 'test'
    expected_bicubic = _bicubic_psnr(test_data / 'GTmod12', test_data / 'LRbicx2')
    assert float(rows['Bicubic']) == pytest.approx(expected_bicubic, abs=0.01)
    assert float(rows['OISR-LF (small)']) > float(rows['Bicubic']) + 0.3


def test_quickstart_refuses_an_existing_run(tmp_path):
    (tmp_path / 'data').mkdir()
    with pytest.raises(FileExistsError, match='already holds a quick-start run'):
        quickstart.run(tmp_path, iters=1)


def test_second_run_names_the_existing_output(tmp_path, capsys):
    (tmp_path / 'out' / 'data').mkdir(parents=True)
    assert quickstart.main(['--workdir', str(tmp_path / 'out')]) == 2
    assert capsys.readouterr().err == (f'error: {tmp_path / "out"} already holds a quick-start run (its table came '
                                       f'from {tmp_path / "out" / "results"}); remove the folder to run it again, or '
                                       'pass another --workdir.\n')
