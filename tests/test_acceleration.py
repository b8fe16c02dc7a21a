"""AcceleratedSRModel: BasicSR's behaviour by default; bf16 / fp16, channels_last and compile on request."""

import copy
import math

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, needs_shared_data, smooth_image
from torch.utils.data import DataLoader

from oisr_basicsr.archs.oisr_arch import OISR
from oisr_basicsr.data.benchmark_hr_dataset import BenchmarkHRDataset
from oisr_basicsr.data.resize import imresize_tensor
from oisr_basicsr.models.accelerated_sr_model import AcceleratedSRModel
from oisr_basicsr.models.nodesr_model import NODESRModel
from oisr_basicsr.options import OptionError
from oisr_basicsr.safeguards.resume import ResumingEnlargedSampler
from oisr_basicsr.startup import validate_options

# isort: split
from basicsr.models.sr_model import SRModel

TINY_OISR = {'type': 'OISR', 'num_feat': 16, 'num_block': 2, 'upscale': 2, 'scheme': 'lf'}
TRAIN = {'optim_g': {'type': 'Adam', 'lr': 1e-3},
         'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
         'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}


pytestmark = pytest.mark.usefixtures('one_thread')


def model_options(model_type: str = 'AcceleratedSRModel', acceleration: dict | None = None, train: bool = False,
                  network: dict | None = None, tmp_path=None) -> dict:
    opt = {'name': 'unit', 'model_type': model_type, 'scale': 2, 'num_gpu': 0, 'is_train': train, 'dist': False,
           'rank': 0, 'world_size': 1, 'network_g': dict(network or TINY_OISR), 'datasets': {},
           'path': {'pretrain_network_g': None, 'strict_load_g': True},
           'val': {'suffix': None, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2,
                                                        'test_y_channel': True}}}}
    if acceleration is not None:
        opt['acceleration'] = acceleration
    if train:
        opt['train'] = copy.deepcopy(TRAIN)
    if tmp_path is not None:
        opt['path'].update(models=str(tmp_path / 'models'), training_states=str(tmp_path / 'training_states'))
        (tmp_path / 'models').mkdir(exist_ok=True)
        (tmp_path / 'training_states').mkdir(exist_ok=True)
        opt['datasets'] = {'train': {'batch_size_per_gpu': 4}}
    return opt


def smooth_batch(seed: int, n: int = 4, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    hr = torch.stack([torch.from_numpy(smooth_image(rng, size, size)).permute(2, 0, 1) for _ in range(n)]) / 255.
    return imresize_tensor(hr, 0.5).clamp(0, 1), hr


@pytest.mark.parametrize('change,message', [
    ({'acceleration': {'precision': 'fp8'}}, r"^acceleration\.precision: not an allowed value; got 'fp8'; allowed: "
                                             r"'fp32', 'bf16' or 'fp16'$"),
    ({'acceleration': {'channels_last': 'yes'}}, r"^acceleration\.channels_last: wrong type; got 'yes'; allowed: true "
                                                 r'or false \(a YAML boolean, unquoted\)$'),
    ({'acceleration': {'compile': 'fastest'}}, r"^acceleration\.compile: not an allowed value; got 'fastest'; allowed: "
                                               r"true or false \(a YAML boolean, unquoted\) or 'default', "
                                               r"'reduce-overhead'"),
    ({'acceleration': {'amp': True}}, r'^acceleration\.amp: unknown key; allowed: precision, channels_last, compile$'),
    ({'acceleration': 'bf16'}, r"^acceleration: wrong type; got 'bf16'; allowed: a mapping$"),
    ({'model_type': 'SRModel', 'acceleration': {'precision': 'bf16'}},
     r'acceleration: model_type SRModel does not read it; use one of AcceleratedSRModel, NODESRModel'),
    ({'model_type': 'FastModel'}, r"^model_type: not a registered model; got 'FastModel'; did you mean SRModel\?; "
                                  r'allowed: .*AcceleratedSRModel'),
])
def test_bad_acceleration_options_name_the_key(change, message):
    opt = {**model_options(), **change}
    with pytest.raises(OptionError, match=message):
        validate_options(opt, check_files=False)


def test_without_the_block_it_trains_exactly_as_srmodel():
    weights = []
    for model_class in (SRModel, AcceleratedSRModel):
        torch.manual_seed(0)
        model = model_class(model_options(model_class.__name__, train=True))
        for step in range(3):
            lq, gt = smooth_batch(step)
            model.feed_data({'lq': lq, 'gt': gt})
            model.optimize_parameters(step + 1)
        weights.append(model.net_g.state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def train_tiny_oisr(iterations: int = 300) -> dict:
    """A tiny OISR-LF x2 trained briefly on smooth images, so that it super-resolves, unlike random weights."""
    torch.manual_seed(0)
    net = OISR(**{k: v for k, v in TINY_OISR.items() if k != 'type'})
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    for step in range(iterations):
        lq, gt = smooth_batch(step, n=8, size=48)
        loss = (net(lq) - gt).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.state_dict()


def set5_psnr(model: AcceleratedSRModel) -> float:
    dataset = BenchmarkHRDataset({'name': 'Set5', 'dataroot_gt': str(SHARED_DATA / 'benchmark' / 'Set5' / 'HR'),
                                  'scale': 2, 'phase': 'test', 'io_backend': {'type': 'disk'}})
    model.validation(DataLoader(dataset, batch_size=1), current_iter=0, tb_logger=None, save_img=False)
    return model.metric_results['psnr']


@pytest.mark.slow
@needs_shared_data('benchmark/Set5/HR')
def test_bf16_inference_is_within_0_05_db_of_fp32_on_set5():
    weights = train_tiny_oisr()
    psnr, outputs = {}, {}
    for precision in ('fp32', 'bf16'):
        model = AcceleratedSRModel(model_options(acceleration={'precision': precision}))
        model.net_g.load_state_dict(weights)
        psnr[precision] = set5_psnr(model)
        lq, _ = smooth_batch(99, n=1)
        model.feed_data({'lq': lq})
        model.test()
        outputs[precision] = model.output
    assert outputs['bf16'].dtype == torch.float32
    # Autocast really ran in bf16: the outputs differ, by about bf16's resolution.
    assert 1e-4 < (outputs['bf16'] - outputs['fp32']).abs().max() < 0.05
    assert psnr['fp32'] > 28  # a network that super-resolves, so that the comparison means something
    assert abs(psnr['bf16'] - psnr['fp32']) < 0.05, psnr


def test_channels_last_keeps_the_outputs_and_stores_nhwc():
    torch.manual_seed(0)
    reference = AcceleratedSRModel(model_options())
    model = AcceleratedSRModel(model_options(acceleration={'channels_last': True}))
    model.net_g.load_state_dict(reference.net_g.state_dict())
    assert model.net_g.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    lq, _ = smooth_batch(0)
    for m in (reference, model):
        m.feed_data({'lq': lq})
        m.test()
    assert model.lq.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model.output, reference.output, atol=1e-5)


def test_fp16_training_scales_the_loss_and_resumes_the_scaler(tmp_path, monkeypatch):
    # Resuming sets where the next training sampler starts; keep that away from other tests.
    monkeypatch.setattr(ResumingEnlargedSampler, 'resume_point', None)
    torch.manual_seed(0)
    opt = model_options(acceleration={'precision': 'fp16'}, train=True, tmp_path=tmp_path)
    model = AcceleratedSRModel(opt)
    assert model.grad_scaler.is_enabled()
    before = [p.detach().clone() for p in model.net_g.parameters()]
    for step in range(3):
        lq, gt = smooth_batch(step)
        model.feed_data({'lq': lq, 'gt': gt})
        model.optimize_parameters(step + 1)
    assert model.output.dtype == torch.float32 and math.isfinite(model.log_dict['l_pix'])
    assert any(not torch.equal(b, p) for b, p in zip(before, model.net_g.parameters(), strict=True))
    # A scale that differs from the initial 2**16, so that the resume below is seen to restore it.
    model.grad_scaler.update(1234.0)
    model.save_training_state(epoch=0, current_iter=3)
    state = torch.load(tmp_path / 'training_states' / '3.state', weights_only=True)
    assert state['grad_scaler']['scale'] == 1234.0

    resumed = AcceleratedSRModel(model_options(acceleration={'precision': 'fp16'}, train=True, tmp_path=tmp_path))
    resumed.resume_training(state)
    assert resumed.grad_scaler.get_scale() == 1234.0


def test_fp32_training_state_has_no_scaler(tmp_path):
    model = AcceleratedSRModel(model_options(train=True, tmp_path=tmp_path))
    model.save_training_state(epoch=0, current_iter=1)
    assert 'grad_scaler' not in torch.load(tmp_path / 'training_states' / '1.state', weights_only=True)


def run_nodesr(acceleration: dict) -> tuple[torch.Tensor, set[torch.dtype]]:
    """A tiny NODE-VDSR with non-zero dynamics: its test output and the dtypes of the ODE states it saw."""
    torch.manual_seed(0)
    opt = model_options('NODESRModel', acceleration=acceleration,
                        network={'type': 'NODEVDSR', 'num_feat': 8, 'num_layer': 3})
    opt['ode'] = {'solver': 'rk4', 'num_steps': 2}
    model = NODESRModel(opt)
    weight = model.net_g.conv_last.weight
    with torch.no_grad():  # copied, not drawn in place: a channels_last weight would draw its values in NHWC order
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(1)) * 0.05)
    state_dtypes = set()
    # The network's input is the solver's state (autocast casts inside the layers, not the module inputs).
    model.get_bare_model(model.net_g).register_forward_pre_hook(lambda _, args: state_dtypes.add(args[0].dtype))
    lq, gt = smooth_batch(0)
    model.feed_data({'lq': lq, 'gt': gt, 'scale': torch.tensor([2.0] * 4)})
    model.test()
    return model.output, state_dtypes


def test_nodesr_bf16_keeps_the_state_in_fp32_and_close_to_fp32():
    fp32, _ = run_nodesr({'precision': 'fp32'})
    bf16, state_dtypes = run_nodesr({'precision': 'bf16'})
    assert state_dtypes == {torch.float32}
    # The network really ran in bf16 (the outputs differ), and only by about bf16's resolution.
    assert 1e-4 < (bf16 - fp32).abs().max() < 0.02


def test_nodesr_channels_last_and_compile_keep_the_outputs():
    reference, _ = run_nodesr({})
    fast, _ = run_nodesr({'channels_last': True, 'compile': True})
    assert torch.allclose(fast, reference, atol=1e-5)


def test_compile_keeps_outputs_and_checkpoint_keys():
    torch.manual_seed(0)
    reference = AcceleratedSRModel(model_options())
    model = AcceleratedSRModel(model_options(acceleration={'compile': True}))
    model.net_g.load_state_dict(reference.net_g.state_dict())
    assert list(model.net_g.state_dict()) == list(reference.net_g.state_dict())
    lq, _ = smooth_batch(0, n=1, size=16)
    for m in (reference, model):
        m.feed_data({'lq': lq})
        m.test()
    assert model.net_g._compiled_call_impl is not None
    assert torch.allclose(model.output, reference.output, atol=1e-5)
