"""A result that cannot fit in memory is refused before any work starts, with the estimated size: by oisr infer, and
by the test pipeline for each validation / test dataset's largest image at that dataset's scale."""

import contextlib
import io

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import run_arguments, smooth_image, tiny_train_options
from torch import nn

from oisr_basicsr import memory
from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.data.benchmark_hr_dataset import BenchmarkHRDataset
from oisr_basicsr.data.continuous_scale_dataset import benchmark_pair
from oisr_basicsr.errors import InsufficientMemoryError
from oisr_basicsr.inference.upsampler import Upsampler
from oisr_basicsr.memory import check_result_fits, peak_memory, traced_forward_peak
from oisr_basicsr.options import report_user_errors
from oisr_basicsr.startup import parse_and_validate_options
from oisr_basicsr.startup.result_memory import largest_result
from oisr_cli.commands.infer import main as infer_main

TINY_OISR = {'num_feat': 8, 'num_block': 1, 'upscale': 2, 'scheme': 'lf', 'g_variant': 'v2'}


def _host_memory(monkeypatch, available: int) -> None:
    monkeypatch.setattr(memory, 'available_host_memory', lambda: available)


# ----------------------------------------------------------------------------------------------------------------
# The estimate


def test_lower_bound_is_fifteen_bytes_per_rgb_output_pixel(monkeypatch):
    # 2000x1000 RGB: 2,000,000 pixels x (3 float32 values + 3 bytes) = 30,000,000 bytes.
    _host_memory(monkeypatch, 30_000_000)
    check_result_fits('photo.png', 2, (1000, 2000), 3, 'cpu', None, 'use less')
    _host_memory(monkeypatch, 29_999_999)
    with pytest.raises(InsufficientMemoryError) as error:
        check_result_fits('photo.png', 2, (1000, 2000), 3, 'cpu', None, 'use less')
    assert str(error.value) == ('photo.png: at scale 2 the result is 2000x1000 pixels, at least 28.6 MiB of memory, '
                                'more than the 28.6 MiB available; use less')
    # One channel (a matlab_y benchmark): a third of it.
    _host_memory(monkeypatch, 10_000_000)
    check_result_fits('photo.png', 2, (1000, 2000), 1, 'cpu', None, 'use less')
    with pytest.raises(InsufficientMemoryError):
        check_result_fits('photo.png', 2, (1000, 2001), 1, 'cpu', None, 'use less')


def test_traced_peak_of_a_known_network_is_its_input_and_its_two_activations():
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 8, 3, padding=1)).eval()
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        measured = peak_memory(lambda: net(x))
    traced = traced_forward_peak(lambda: net, (1, 3, 20, 20))
    # The input, then the 32-channel map and the 8-channel output alive together while the second conv runs.
    assert traced == (3 + 32 + 8) * 20 * 20 * 4 == x.nbytes + measured
    # A network built under the fake mode has fake weights and the same peak.
    built = traced_forward_peak(lambda: nn.Sequential(nn.Conv2d(3, 32, 3, padding=1),
                                                      nn.Conv2d(32, 8, 3, padding=1)).eval(), (1, 3, 20, 20))
    assert built == traced


def test_forward_that_reads_values_is_not_traced():
    # What an adaptive solver does to choose its next step.
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x * float(x.abs().max())

    assert traced_forward_peak(lambda: forward, (1, 3, 8, 8)) is None


def test_traced_peak_counts_when_larger_than_the_result(monkeypatch):
    # 200 pixels x 15 bytes = 3,000 bytes for the result; the network's traced peak is 12,345.
    _host_memory(monkeypatch, 12_345)
    check_result_fits('x', 2, (10, 20), 3, 'cpu', 12_345, 'use less')
    _host_memory(monkeypatch, 12_344)
    with pytest.raises(InsufficientMemoryError, match=r"^x: at scale 2 the result is 20x10 pixels, an estimated 12.1 "
                                                      r"KiB \(the network's traced peak\) of memory, more than the "
                                                      r'12.1 KiB available; use less$'):
        check_result_fits('x', 2, (10, 20), 3, 'cpu', 12_345, 'use less')
    check_result_fits('x', 2, (10, 20), 3, 'cpu', 2_000, 'use less')  # a smaller peak: the result's 3,000 count
    _host_memory(monkeypatch, 2_999)
    with pytest.raises(InsufficientMemoryError, match='at least 2.9 KiB of memory'):
        check_result_fits('x', 2, (10, 20), 3, 'cpu', 2_000, 'use less')


def test_on_a_gpu_the_network_is_compared_with_its_memory_and_the_result_with_the_host(monkeypatch):
    free = {'cpu': 10**9, 'cuda': 1000}
    monkeypatch.setattr(memory, 'available_memory', lambda device: free[torch.device(device).type])
    # Untraced, the float32 result: 100 pixels x 12 bytes = 1,200 bytes on the GPU.
    with pytest.raises(InsufficientMemoryError, match=r'at least 1.2 KiB of cuda:0 memory, more than the 1000 bytes '
                                                      r'available'):
        check_result_fits('x', 2, (10, 10), 3, torch.device('cuda', 0), None, 'use less')
    check_result_fits('x', 2, (10, 10), 3, torch.device('cuda', 0), 1000, 'use less')  # the traced peak fits
    free['cpu'] = 1499  # 100 pixels x 15 bytes do not fit on the host
    with pytest.raises(InsufficientMemoryError, match='at least 1.5 KiB of memory, more than the 1.5 KiB available'):
        check_result_fits('x', 2, (10, 10), 3, torch.device('cuda', 0), 1000, 'use less')


# ----------------------------------------------------------------------------------------------------------------
# Each test dataset's largest image at its scale, as the dataset sizes it


def test_benchmark_dataset_result_is_its_modcropped_image(tmp_path):
    folder = tmp_path / 'HR'
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / 'wide.png'), smooth_image(rng, 50, 70))
    cv2.imwrite(str(folder / 'square.png'), smooth_image(rng, 64, 64))
    largest = largest_result({'type': 'BenchmarkHRDataset'}, {'dataroot_gt': {'wide': (50, 70), 'square': (64, 64)}},
                              3)
    item = BenchmarkHRDataset({'dataroot_gt': str(folder), 'scale': 3, 'phase': 'test'})[0]  # square.png, first by name
    assert item['lq_path'].endswith('square.png')
    assert largest == ('dataroot_gt', 'square', tuple(item['lq'].shape[1:]), tuple(item['gt'].shape[1:]))
    assert largest[3] == (63, 63)


@pytest.mark.parametrize('scale', [2.5, 3.0, 5.7])
def test_continuous_scale_result_is_the_reference_of_its_pair(scale):
    largest = largest_result({'type': 'ContinuousScalePairedDataset', 'test_scale': scale},
                              {'dataroot_gt': {'a': (64, 61)}}, None)
    lr, reference = benchmark_pair(np.zeros((64, 61, 3), np.uint8), scale)
    assert largest == ('dataroot_gt', 'a', lr.shape[:2], reference.shape[:2])


def _test_options(paired_folders, tmp_path, **dataset) -> str:
    hr_dir, lr_dir = paired_folders
    opt = {'name': 'memory_check', 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0,
           'network_g': {'type': 'OISR', **TINY_OISR},
           'datasets': {'test_1': {'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': str(hr_dir),
                                   'dataroot_lq': str(lr_dir), 'io_backend': {'type': 'disk'}, **dataset}},
           'path': {'pretrain_network_g': None, 'strict_load_g': True},
           'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2}}}}
    option_file = tmp_path / 'test.yml'
    option_file.write_text(yaml.safe_dump(opt))
    return str(option_file)


def _start(option_file: str, root, is_train: bool = False) -> tuple[int, str]:
    stderr = io.StringIO()
    with contextlib.ExitStack() as hold:
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()), report_user_errors():
                parse_and_validate_options(str(root), is_train, run_arguments('-opt', option_file), hold=hold)
        except SystemExit as exit_:
            return exit_.code, stderr.getvalue()
    return 0, stderr.getvalue()


def test_test_dataset_whose_result_cannot_fit_is_refused(paired_folders, tmp_path, monkeypatch):
    _, lr_dir = paired_folders
    option_file = _test_options(paired_folders, tmp_path)
    assert _start(option_file, tmp_path) == (0, '')  # a normal test option file starts
    # Every LR image is 32x32: the result is 64x64, and the network's traced peak on a 32x32 input is the estimate.
    traced = traced_forward_peak(lambda: OISR(**TINY_OISR).eval(), (1, 3, 32, 32))
    assert traced > 64 * 64 * 15
    _host_memory(monkeypatch, traced - 1)
    status, err = _start(option_file, tmp_path)
    assert status == 2
    assert err == (f'error: datasets.test_1: {lr_dir / "img0.png"}: at scale 2 the result is 64x64 pixels, an '
                   f"estimated {memory.format_bytes(traced)} (the network's traced peak) of memory, more than the "
                   f'{memory.format_bytes(traced - 1)} available; test on smaller images or on a device with more '
                   'memory\n')
    _host_memory(monkeypatch, traced)
    assert _start(option_file, tmp_path) == (0, '')


def test_validation_set_of_a_training_run_is_checked_too(paired_folders, tmp_path, monkeypatch):
    _, lr_dir = paired_folders
    option_file = tmp_path / 'train.yml'
    option_file.write_text(yaml.safe_dump(tiny_train_options(*paired_folders, 'memory_check', total_iter=2)))
    _host_memory(monkeypatch, 64 * 64 * 15 - 1)  # below even the lower bound
    status, err = _start(str(option_file), tmp_path, is_train=True)
    assert status == 2 and err.startswith(f'error: datasets.val: {lr_dir / "img0.png"}: at scale 2 the result is '
                                          '64x64 pixels')


def test_nodesr_test_set_is_estimated_from_its_result(paired_folders, tmp_path, monkeypatch):
    hr_dir, _ = paired_folders
    opt = {'name': 'memory_check', 'model_type': 'NODESRModel', 'num_gpu': 0, 'ode': {'solver': 'rk4', 'num_steps': 1},
           'network_g': {'type': 'NODEVDSR', 'num_feat': 4, 'num_layer': 2},
           'datasets': {'test_1': {'name': 'x2.5', 'type': 'ContinuousScalePairedDataset', 'dataroot_gt': str(hr_dir),
                                   'test_scale': 2.5, 'io_backend': {'type': 'disk'}}},
           'path': {'pretrain_network_g': None, 'strict_load_g': True},
           'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 'scale'}}}}
    option_file = tmp_path / 'node.yml'
    option_file.write_text(yaml.safe_dump(opt))
    # 64x64 at 2.5 (Meta-SR): 4 rows and columns dropped, a 24x24 LR image, a 60x60 reference; its solver is not
    # traced, so the estimate is the result's 60 x 60 x 15 bytes.
    _host_memory(monkeypatch, 60 * 60 * 15)
    assert _start(str(option_file), tmp_path) == (0, '')
    _host_memory(monkeypatch, 60 * 60 * 15 - 1)
    status, err = _start(str(option_file), tmp_path)
    assert status == 2
    assert err == (f'error: datasets.test_1: {hr_dir / "img0.png"}: at scale 2.5 the result is 60x60 pixels, at '
                   'least 52.7 KiB of memory, more than the 52.7 KiB available; test on smaller images or on a device '
                   'with more memory\n')


# ----------------------------------------------------------------------------------------------------------------
# oisr infer: the same check, and --tile bounds the network's part


def test_infer_refuses_what_only_tiles_fit(tmp_path, monkeypatch, capsys, one_thread):
    net = OISR(**TINY_OISR).eval()
    weights = tmp_path / 'net_g.pth'
    torch.save({'params': net.state_dict()}, weights)
    option_file = tmp_path / 'infer.yml'
    option_file.write_text(yaml.safe_dump({'name': 'tiny', 'model_type': 'SRModel', 'scale': 2,
                                           'network_g': {'type': 'OISR', **TINY_OISR},
                                           'path': {'pretrain_network_g': str(weights)}}))
    photos = tmp_path / 'photos'
    photos.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(photos / 'small.png'), smooth_image(rng, 20, 24))
    cv2.imwrite(str(photos / 'large.png'), smooth_image(rng, 40, 48))
    whole = Upsampler(net, 2, torch.device('cpu')).traced_peak(40, 48)
    tiled = Upsampler(net, 2, torch.device('cpu'), tile=16, tile_overlap=4).traced_peak(40, 48)
    result = 80 * 96 * 15
    assert whole > tiled > result  # tiled: the assembled output and one window's work
    _host_memory(monkeypatch, tiled)
    args = ['-opt', str(option_file), '-i', str(photos), '-o', str(tmp_path / 'sr'), '--device', 'cpu', '--no-progress']
    assert infer_main(args) == 2
    assert capsys.readouterr().err == (
        f'error: {photos / "large.png"}: at scale 2 the result is 96x80 pixels, an estimated '
        f"{memory.format_bytes(whole)} (the network's traced peak) of memory, more than the "
        f"{memory.format_bytes(tiled)} available; use --tile (it bounds the network's part, not the result) or a "
        'smaller image\n')
    assert not (tmp_path / 'sr').exists()
    assert infer_main([*args, '--tile', '16', '--tile-overlap', '4']) == 0
    assert sorted(path.name for path in (tmp_path / 'sr').iterdir()) == ['large.png', 'small.png']


def test_tracing_leaves_no_fake_tensor_in_the_resize_cache():
    from oisr_basicsr.archs.bicubic_arch import Bicubic

    traced = traced_forward_peak(lambda: Bicubic(upscale=3), (1, 1, 10, 12))
    assert traced is not None and traced >= (10 * 12 + 30 * 36) * 4  # the input and the output at least
    out = Bicubic(upscale=3)(torch.rand(1, 1, 10, 12))  # the same weights' key: served from the cache
    assert out.shape == (1, 1, 30, 36) and np.isfinite(out.numpy()).all()


def test_tracing_leaves_the_random_generators_as_they_were():
    # The check runs after the run's seed is set: a traced network's initialisation must not draw from it.
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    assert traced_forward_peak(lambda: OISR(**TINY_OISR).eval(), (1, 3, 16, 16)) is not None
    assert torch.equal(torch.rand(3), expected)
