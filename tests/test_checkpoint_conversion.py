"""Converting the authors' checkpoints: same function as their network, exact layout checks, no unpickling."""

import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO_ROOT
from torch import nn

import oisr_basicsr  # noqa: F401  (patches BasicSR for today's torch; must run before any basicsr import)

# isort: split
from basicsr.archs import build_network

from oisr_basicsr.archs.oisr_arch import PAPER_MODELS, build_paper_model
from oisr_basicsr.checkpoints.conversion import (
    authors_key_map,
    convert_checkpoint,
    convert_state_dict,
)
from oisr_basicsr.checkpoints.weights import load_weights
from oisr_basicsr.errors import CheckpointError
from oisr_cli.commands import convert

MEAN = (0.4488, 0.4371, 0.4040)
# OISR.md "Paper models": block, N, F; "Authors' checkpoint layout": key counts at x2 / x3 / x4.
SIZES = {'LF-s': ('lf', 8, 64), 'RK2-s': ('rk2', 8, 64), 'LF': ('lf', 8, 122), 'RK2': ('rk2', 8, 122),
         'RK3': ('rk3', 22, 256)}
KEY_COUNTS = {'lf': (140, 140, 142), 'rk2': (116, 116, 118), 'rk3': (320, 320, 322)}


# An independent re-implementation of the authors' EDSR-style network, written from the paper's equations
# and the layout in OISR.md, with their module names; inputs and outputs in [0, 255].
class AuthorsMeanShift(nn.Conv2d):
    def __init__(self, sign: int):
        super().__init__(3, 3, kernel_size=1)
        std = torch.ones(3)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * 255 * torch.tensor(MEAN) / std


class AuthorsBlock(nn.Module):
    def __init__(self, f: int, num_convs: int, scales: tuple[float, ...]):
        super().__init__()
        for k in range(1, num_convs + 1):
            setattr(self, f'conv{k}', nn.Conv2d(f, f, 3, padding=1))
            setattr(self, f'relu{k}', nn.PReLU(f, 0.25))
        for k, value in enumerate(scales, start=1):
            setattr(self, f'scale{k}', nn.Parameter(torch.tensor([value])))

    def g(self, k: int, y: torch.Tensor) -> torch.Tensor:  # G-v2: PReLU -> conv
        return getattr(self, f'conv{k}')(getattr(self, f'relu{k}')(y))


class AuthorsLF(AuthorsBlock):
    def __init__(self, f: int):
        super().__init__(f, 4, (2.0, 2.0, 2.0, 2.0))

    def forward(self, x):
        y1 = self.scale1 * self.g(1, x)
        y2 = x + self.scale2 * self.g(2, y1)
        y3 = y1 + self.scale3 * self.g(3, y2)
        return y2 + self.scale4 * self.g(4, y3)


class AuthorsRK2(AuthorsBlock):
    def __init__(self, f: int):
        super().__init__(f, 4, (0.5, ))

    def forward(self, x):
        # The authors' numbering: G1 = conv3 relu3 conv1 relu1, G2 = conv4 relu4 conv2 relu2.
        k1 = self.g(3, self.g(1, x))
        k2 = self.g(4, self.g(2, x + k1))
        return x + self.scale1 * (k1 + k2)


class AuthorsRK3(AuthorsBlock):
    def __init__(self, f: int):
        super().__init__(f, 3, (0.5, 2.0, -1.0, 4.0, 1 / 6))

    def forward(self, x):
        k1 = self.g(1, x)
        k2 = self.g(2, x + self.scale1 * k1)
        k3 = self.g(3, x + self.scale2 * k2 + self.scale3 * k1)
        return x + self.scale5 * (k1 + self.scale4 * k2 + k3)


class AuthorsOISR(nn.Module):
    def __init__(self, model: str, scale: int):
        super().__init__()
        scheme, n, f = SIZES[model]
        block = {'lf': AuthorsLF, 'rk2': AuthorsRK2, 'rk3': AuthorsRK3}[scheme]
        self.sub_mean = AuthorsMeanShift(-1)
        self.head = nn.Sequential(nn.Conv2d(3, f, 3, padding=1))
        self.body = nn.Sequential(*[block(f) for _ in range(n)], nn.Conv2d(f, f, 3, padding=1))
        shuffles = [3] if scale == 3 else [2] * (scale // 2)
        upsampler = [layer for r in shuffles for layer in (nn.Conv2d(f, r * r * f, 3, padding=1), nn.PixelShuffle(r))]
        self.tail = nn.Sequential(nn.Sequential(*upsampler), nn.Conv2d(f, 3, 3, padding=1))
        self.add_mean = AuthorsMeanShift(1)

    def forward(self, x):
        x = self.head(self.sub_mean(x))
        res = self.body(x) + x
        return self.add_mean(self.tail(res))


def trained_authors_model(model: str, scale: int, seed: int = 0) -> AuthorsOISR:
    """Random weights standing in for trained ones: every scalar, PReLU and mean-shift value differs from its init
    (the mean shift drifted, as in the authors' runs), so any mis-mapped tensor changes the output."""
    torch.manual_seed(seed)
    net = AuthorsOISR(model, scale)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if 'scale' in name:
                param.mul_(1 + 0.2 * torch.randn(1))
            elif 'relu' in name:
                param.uniform_(0.0, 0.5)
        for shift in (net.sub_mean, net.add_mean):
            shift.weight.add_(0.02 * torch.randn_like(shift.weight))
            shift.bias.add_(3 * torch.randn_like(shift.bias))
    return net.eval()


def option_network(model: str, scale: int) -> nn.Module:
    """The network ``options/test_OISR_<model>_x<scale>.yml`` builds."""
    option_file = REPO_ROOT / 'options' / f'test_OISR_{model.replace("-", "_")}_x{scale}.yml'
    return build_network(yaml.safe_load(option_file.read_text())['network_g']).eval()


def assert_same_function(converted: Path, authors: AuthorsOISR, model: str, scale: int) -> None:
    net = option_network(model, scale)
    net.load_state_dict(torch.load(converted, weights_only=True)['params'], strict=True)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = authors(255 * x) / 255
        ours = net(x)
    assert ours.shape == (1, 3, 8 * scale, 8 * scale)
    assert expected.abs().max() > 0.1  # a meaningful comparison, not two near-zero outputs
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize('model,scale', [('LF-s', 2), ('LF-s', 4), ('RK2-s', 2), ('RK2-s', 4), ('RK3', 3)])
def test_converted_checkpoint_computes_the_authors_function(tmp_path, model, scale):
    authors = trained_authors_model(model, scale)
    state_dict = authors.state_dict()
    assert len(state_dict) == KEY_COUNTS[SIZES[model][0]][scale - 2]  # the re-implementation has OISR.md's layout
    torch.save(state_dict, tmp_path / 'authors.pt')
    count = convert_checkpoint(tmp_path / 'authors.pt', tmp_path / 'net_g.pth', model, scale)
    assert count == len(state_dict)
    assert_same_function(tmp_path / 'net_g.pth', authors, model, scale)


def test_rk2_layers_are_mapped_in_execution_order_not_by_number():
    authors = trained_authors_model('RK2-s', 2)
    state_dict = authors.state_dict()
    converted = convert_state_dict(state_dict, 'RK2-s', 2)
    assert torch.equal(converted['body.blocks.0.steps.0.3.weight'], state_dict['body.0.conv3.weight'])
    # Numeric order (G1 = conv2 relu2 conv1 relu1) is what swapping the names 2 <-> 3 gives: another network.
    renamed = {re.sub(r'(conv|relu)([23])\.', lambda m: f'{m[1]}{5 - int(m[2])}.', k): v for k, v in state_dict.items()}
    net = option_network('RK2-s', 2)
    net.load_state_dict(convert_state_dict(renamed, 'RK2-s', 2))
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert (net(x) - authors(255 * x) / 255).abs().max() > 1e-3


def test_key_map_covers_every_tensor_of_every_paper_model():
    for model, (scheme, _, _) in SIZES.items():
        for scale in (2, 3, 4):
            key_map = authors_key_map(model, scale)
            assert len(key_map) == KEY_COUNTS[scheme][scale - 2]
            with torch.device('meta'):
                ours = build_paper_model(model, scale).state_dict()
            assert sorted(key_map.values()) == sorted(ours)


@pytest.mark.parametrize('wrap', ['state_dict', 'model', 'module', 'legacy'])
def test_wrapped_prefixed_and_legacy_files_are_accepted(tmp_path, wrap):
    authors = trained_authors_model('LF-s', 2)
    state_dict = authors.state_dict()
    if wrap == 'module':
        torch.save({f'module.{k}': v for k, v in state_dict.items()}, tmp_path / 'in.pt')
    elif wrap == 'legacy':  # torch < 1.6 format, as files from 2019 may be
        torch.save(state_dict, tmp_path / 'in.pt', _use_new_zipfile_serialization=False)
    else:
        torch.save({wrap: state_dict, 'epoch': 800, 'optimizer': {'lr': 1e-4}}, tmp_path / 'in.pt')
    convert_checkpoint(tmp_path / 'in.pt', tmp_path / 'out.pth', 'LF-s', 2)
    assert_same_function(tmp_path / 'out.pth', authors, 'LF-s', 2)


def test_wrong_keys_and_shapes_are_all_named_and_nothing_is_written(tmp_path):
    state_dict = dict(trained_authors_model('RK2-s', 2).state_dict())
    del state_dict['body.3.conv3.weight'], state_dict['body.0.scale1']
    state_dict['body.0.scale2'] = torch.zeros(1)
    state_dict['tail.1.bias'] = torch.zeros(4)
    state_dict['head.0.weight'] = torch.zeros(64, 3, 5, 5)
    torch.save(state_dict, tmp_path / 'in.pt')
    with pytest.raises(CheckpointError) as error:
        convert_checkpoint(tmp_path / 'in.pt', tmp_path / 'out.pth', 'RK2-s', 2)
    message = str(error.value)
    assert "is not an OISR-RK2-s x2 checkpoint in the authors' layout (115 tensors, 116 expected)" in message
    assert '  missing (2): body.0.scale1, body.3.conv3.weight\n' in message
    assert '  unexpected (1): body.0.scale2\n' in message
    assert ('  wrong shape (2): head.0.weight (64, 3, 5, 5) (expected (64, 3, 3, 3)), '
            'tail.1.bias (4,) (expected (3,))') in message
    assert not (tmp_path / 'out.pth').exists()


def test_wrong_model_or_scale_names_the_matching_one(tmp_path):
    torch.save(trained_authors_model('LF-s', 4).state_dict(), tmp_path / 'in.pt')
    # LF's layers are RK2's plus scale2..4 per block; x4 has a second upsampling conv.
    with pytest.raises(CheckpointError, match=r'\n  unexpected \(26\): body\.0\.scale2, .*, tail\.0\.2\.weight, '
                                              r'tail\.0\.2\.bias\nIt matches --model LF-s --scale 4\.$'):
        convert_checkpoint(tmp_path / 'in.pt', tmp_path / 'out.pth', 'RK2-s', 2)
    with pytest.raises(CheckpointError, match=r'wrong shape \(2\): tail\.0\.0\.weight \(256, 64, 3, 3\) '
                                              r'\(expected \(576, 64, 3, 3\)\)'):
        convert_checkpoint(tmp_path / 'in.pt', tmp_path / 'out.pth', 'LF-s', 3)
    assert not (tmp_path / 'out.pth').exists()


class RunsCode:
    """A pickle payload that runs a shell command when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
@pytest.mark.parametrize('writer,message', [
    ('torch', r'in\.pt was not loaded: it holds objects other than tensors and plain data.*GLOBAL posix\.system'),
    ('pickle2', r'in\.pt was not loaded: it holds objects other than tensors and plain data.*GLOBAL posix\.system'),
    # torch refuses the opcodes before reaching the global
    ('pickle5', r'in\.pt was not loaded: it holds objects other than tensors and plain data'),
])
def test_pickle_carrying_code_is_refused_and_never_run(tmp_path, writer, message):
    marker = tmp_path / 'code_ran'
    payload = {'head.0.bias': [0.0], 'evil': RunsCode(marker)}
    with open(tmp_path / 'in.pt', 'wb') as f:
        if writer == 'torch':
            torch.save(payload, f)
        else:
            pickle.dump(payload, f, protocol=int(writer[-1]))
    with pytest.raises(CheckpointError, match=message):
        convert_checkpoint(tmp_path / 'in.pt', tmp_path / 'out.pth', 'LF-s', 2)
    assert not marker.exists()
    assert not (tmp_path / 'out.pth').exists()


def test_whole_pickled_module_is_refused_with_advice(tmp_path):
    torch.save(AuthorsOISR('LF-s', 2), tmp_path / 'model.pt')
    with pytest.raises(CheckpointError, match=r'model\.pt was not loaded: it holds objects other than tensors .*GLOBAL '
                                              r'test_checkpoint_conversion\.AuthorsOISR.*save its weights instead: '
                                              r'torch\.save\(torch\.load\(path, weights_only=False\)\.state_dict\(\)'):
        load_weights(tmp_path / 'model.pt')


@pytest.mark.parametrize('content,message', [
    ({'head.0.weight': torch.zeros(1), 'head.0.bias': 2.0}, r'these entries are not tensors: head\.0\.bias \(float\)'),
    ([torch.zeros(1)], r'holds a list, not a state dict'),
    ({1: torch.zeros(1)}, r'these names are not strings: 1'),
])
def test_non_tensor_content_is_refused(tmp_path, content, message):
    torch.save(content, tmp_path / 'in.pt')
    with pytest.raises(CheckpointError, match=message):
        load_weights(tmp_path / 'in.pt')


@pytest.mark.slow
def test_cli(tmp_path, capsys):
    torch.save(trained_authors_model('LF-s', 2).state_dict(), tmp_path / 'in.pt')
    # One real process through the `oisr` command (imports take seconds); the error path runs in-process.
    ok = subprocess.run([sys.executable, '-m', 'oisr_cli', 'convert', str(tmp_path / 'in.pt'),
                         str(tmp_path / 'out.pth'), '--model', 'LF-s', '--scale', '2'],
                        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert ok.returncode == 0, ok.stderr
    card_path = tmp_path / 'out.pth.card.json'
    assert ok.stdout == (f'wrote {tmp_path / "out.pth"} (140 tensors) for the network of '
                         f'options/test_OISR_LF_s_x2.yml\nwrote {card_path}\n')
    card = json.loads(card_path.read_text())
    assert card['resources'] == [{'type': 'pth', 'file': 'out.pth', 'size': (tmp_path / 'out.pth').stat().st_size,
                                  'sha256': hashlib.sha256((tmp_path / 'out.pth').read_bytes()).hexdigest()}]
    assert card['convertedFrom']['sha256'] == hashlib.sha256((tmp_path / 'in.pt').read_bytes()).hexdigest()
    assert (card['architecture'], card['scale'], card['colorMode']) == ('OISR', 2, 'RGB')
    assert card['architectureOptions'] == {**PAPER_MODELS['LF-s'], 'upscale': 2}
    assert card['parameters'] == sum(p.numel() for p in build_paper_model('LF-s', 2).parameters())
    assert card['trainingIterations'] is None and card['validation'] is None
    assert convert.main([str(tmp_path / 'in.pt'), str(tmp_path / 'out.pth'), '--model', 'LF-s', '--scale', '2']) == 2
    assert capsys.readouterr().err == (f'error: {tmp_path / "out.pth"} already exists; '
                                       'remove it or choose another output location\n')
    assert convert.main([str(tmp_path / 'in.pt'), str(tmp_path / 'other.pth'), '--model', 'RK3', '--scale', '2']) == 2
    assert capsys.readouterr().err.startswith(f'error: {tmp_path / "in.pt"} is not an OISR-RK3 x2 checkpoint')
    assert not (tmp_path / 'other.pth').exists()
