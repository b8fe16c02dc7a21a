"""The GPU acceptance script's CPU rehearsal (``--dry-run``), so the script cannot rot between GPU runs."""

import re

import pytest
import torch
from conftest import SHARED_DATA, needs_shared_data

from benchmarks import gpu_acceptance as acceptance


@pytest.mark.slow
@needs_shared_data('benchmark/Set5/HR', 'train/T91')
def test_dry_run_runs_every_section_and_passes_its_checks(capsys, one_thread):
    assert acceptance.main(['--dry-run', '--data-root', str(SHARED_DATA)]) == 0
    table = capsys.readouterr().out
    rows = [line.split(' | ') for line in table.splitlines() if line.startswith('| ') and not line.startswith('| Sec')]
    sections = {row[0].removeprefix('| ') for row in rows}
    assert sections == set(acceptance.SECTIONS)
    assert all(row[-1] in ('yes |', ' |') for row in rows), table  # no **NO**
    # Both precisions of both AMP models, four configurations per throughput model, bicubic's published Set5 row.
    assert len([row for row in rows if row[0] == '| amp']) == 12
    assert len([row for row in rows if row[0] == '| throughput']) == 4 * len(acceptance.DRY_SIZES.throughput_models)
    assert re.search(r'\| Bicubic, Set5 x2 \| 33\.68 dB \|', table)
    assert re.search(r'\| pytest -m cuda tests/test_cuda\.py \| \d+ skipped \|', table)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message of a machine without CUDA')
def test_a_real_run_without_cuda_is_refused_with_advice(capsys):
    with pytest.raises(SystemExit) as exit_info:
        acceptance.main([])
    assert exit_info.value.code == 2
    assert 'error: no CUDA device: run on a GPU machine, or pass --dry-run' in capsys.readouterr().err


def test_fraction_of_peak_uses_the_given_or_the_known_peak():
    assert acceptance.peak_bf16_flops(torch.device('cpu'), 100.0) == 100e12
    assert acceptance.peak_bf16_flops(torch.device('cpu'), None) is None
