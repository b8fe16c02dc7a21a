"""The README's quick start, start to finish: its small OISR model must beat bicubic."""

import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from oisr_basicsr.tools import quickstart
from oisr_cli.commands import quickstart as quickstart_command

# Everything the quick start prints, stdout and stderr together (docs/benchmarks.md records the count).
MAX_LINES = 40


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
    # A short console: the training's lines and validations, the table, then where the model is and what to do.
    printed = (result.stdout + result.stderr).splitlines()
    assert len(printed) <= MAX_LINES, '\n'.join(printed)
    assert result.stdout.endswith(quickstart.next_steps(workdir) + '\n')
    assert quickstart.trained_weights(workdir).is_file()
    assert f'trained model: {quickstart.trained_weights(workdir)}' in result.stderr.splitlines()
    assert len(re.findall(r'^iter \d+/600  epoch \d+  l_pix ', result.stderr, re.MULTILINE)) == 600 // 50


def test_next_steps_name_the_model_its_option_file_and_three_commands(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert quickstart.next_steps(tmp_path / 'qs').splitlines() == [
        'trained model: qs/experiments/quickstart_OISR_LF_x2/models/net_g_latest.pth',
        'its option file (for oisr infer, export, compare, complexity, test): qs/test_quickstart_OISR_LF_x2.yml',
        'next:',
        '  oisr infer -opt qs/test_quickstart_OISR_LF_x2.yml --input your_photo.png --output sr/',
        '  oisr export -opt qs/test_quickstart_OISR_LF_x2.yml --output quickstart_OISR_LF_x2.onnx   # needs pip '
        'install "oisr-basicsr[export]"',
        '  oisr compare -opt qs/test_quickstart_OISR_LF_x2.yml qs/test_quickstart_bicubic_x2.yml --datasets '
        'qs/data/test/HR --output-dir qs/comparison',
    ]


def test_quickstart_refuses_an_existing_run(tmp_path):
    (tmp_path / 'data').mkdir()
    with pytest.raises(FileExistsError, match='already holds a quick-start run'):
        quickstart.run(tmp_path, iters=1)


def test_second_run_names_the_existing_output(tmp_path, capsys):
    (tmp_path / 'out' / 'data').mkdir(parents=True)
    assert quickstart_command.main(['--workdir', str(tmp_path / 'out')]) == 2
    assert capsys.readouterr().err == (f'error: {tmp_path / "out"} already holds a quick-start run (its table came '
                                       f'from {tmp_path / "out" / "results"}); remove the folder to run it again, or '
                                       'pass another --workdir.\n')
