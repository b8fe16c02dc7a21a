"""Claims that need a CUDA GPU: AMP steps, channels_last, compile, NODE-SR gradient modes, NCCL under torchrun.

Every test here carries the ``cuda`` marker and skips on a machine without a GPU;
``benchmarks/gpu_acceptance.py`` runs them with ``pytest -m cuda``.
"""

import os
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import TRAIN_WORKER, tiny_train_options

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)
from oisr_basicsr.archs.node_vdsr_arch import NODEVDSR
from oisr_basicsr.archs.oisr_arch import build_paper_model
from oisr_basicsr.models.node_solver import ODEOptions, integrate

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')]


@pytest.fixture
def exact_fp32():
    """fp32 convolutions without TF32, so that layouts and compiled kernels are compared at fp32 precision."""
    previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous


@pytest.mark.parametrize('model', ['LF-s', 'RK2-s'])
@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_amp_training_step_is_finite_and_close_to_fp32(model, precision, exact_fp32):
    from benchmarks import gpu_acceptance as acceptance  # the benchmark imports the whole toolset: only here
    result = acceptance.amp_deviation(lambda: build_paper_model(model, 2), precision, torch.device('cuda'), 4, 48)
    bounds = acceptance.AMP_BOUNDS[precision]
    assert result['finite']
    assert result['loss'] < bounds['loss'] and result['grad'] < bounds['grad'], result


@pytest.mark.parametrize('model', ['LF-s', 'RK2-s'])
def test_channels_last_and_compile_compute_the_same_network(model, exact_fp32):
    torch.manual_seed(0)
    net = build_paper_model(model, 2).cuda().eval()
    x = torch.rand(2, 3, 32, 32, device='cuda')
    with torch.no_grad():
        reference = net(x)
        compiled = torch.compile(net)(x)
        net.to(memory_format=torch.channels_last)
        channels_last = net(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(channels_last, reference, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(compiled, reference, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('mode', ['adjoint', 'checkpoint'])
def test_nodesr_gradient_modes_agree_with_backprop_on_cuda(mode):
    torch.manual_seed(0)
    net = NODEVDSR(num_feat=8, num_layer=3).cuda().double()
    torch.nn.init.normal_(net.conv_last.weight, std=0.2)
    i0 = torch.rand(2, 3, 16, 16, device='cuda', dtype=torch.float64)
    target = torch.rand_like(i0)
    t0 = torch.tensor([2.0, 3.5], device='cuda')

    def gradients(gradient: str) -> torch.Tensor:
        net.zero_grad()
        final = integrate(net, i0, t0, ODEOptions(solver='rk4', num_steps=8, gradient=gradient)).final
        (final - target).abs().mean().backward()
        return torch.cat([p.grad.flatten() for p in net.parameters()])

    reference = gradients('backprop')
    error = ((gradients(mode) - reference).norm() / reference.norm()).item()
    # checkpoint recomputes the same graph; the adjoint differs by the discretisation error of 8 RK4 steps.
    assert error < (1e-10 if mode == 'checkpoint' else 1e-3), error


def test_nccl_training_under_torchrun_one_process_per_gpu(tmp_path, paired_folders):
    gpus = torch.cuda.device_count()
    options = tiny_train_options(*paired_folders, 'ddp_nccl', total_iter=4)
    options['num_gpu'] = gpus
    option_file = tmp_path / 'options.yml'
    option_file.write_text(yaml.safe_dump(options))
    weights_dir = tmp_path / 'weights'
    weights_dir.mkdir()
    command = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={gpus}', '--master_port=29541',
               str(TRAIN_WORKER), '-opt', str(option_file), '--launcher', 'pytorch']
    env = {**os.environ, 'WEIGHTS_OUT': str(weights_dir), 'PYTHONWARNINGS': 'ignore'}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    log = next((tmp_path / 'experiments' / 'ddp_nccl').glob('train_*.log')).read_text()
    assert f'World size (gpu number): {gpus}' in log
    weights = [torch.load(weights_dir / f'rank{rank}.pth') for rank in range(gpus)]
    assert all(torch.equal(w[key], weights[0][key]) for w in weights for key in w)


def test_traced_inference_peak_on_the_gpu_is_at_most_the_allocators():
    from oisr_basicsr.inference.upsampler import Upsampler
    from oisr_basicsr.memory import peak_memory

    upsampler = Upsampler(build_paper_model('LF-s', 2), 2, torch.device('cuda'))
    traced = upsampler.traced_peak(64, 64)  # the real CUDA weights taken as fake ones
    assert traced is not None and traced > 128 * 128 * 3 * 4  # more than the float32 output alone
    lq = torch.rand(1, 3, 64, 64, device='cuda')
    with torch.inference_mode():
        measured = peak_memory(lambda: upsampler._forward(lq), 'cuda')
    # The allocator rounds every block up to 512 bytes and cuDNN may add a workspace: never less than the tensors.
    assert lq.nbytes + measured >= traced
