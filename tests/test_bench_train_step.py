"""benchmarks/bench_train_step.py on tiny patches: the pairs, exact counts, fake-tensor peaks equal to real ones."""

import pytest
import torch

from benchmarks import bench_train_step as bench

# Tiny steps: an 8x8 LR patch, batch 1, no warm-up, one timed step.
TINY = ['--scales', '2', '--patch', '8', '--batch', '1', '--trace-batch', '1', '--runs', '1', '--warmup', '0']


def test_pairs_have_the_papers_parameters_and_equal_convolution_work(one_thread, capsys):
    rows = bench.main(['--models', 'LF-s', 'RK2-s', *TINY])
    assert [(row.model, row.baseline) for row in rows] == [
        ('EDSR-baseline', 'EDSR-baseline'), ('LF-s', 'EDSR-baseline'), ('RK2-s', 'EDSR-baseline')]
    params = {row.model: row.params for row in rows}
    # OISR.md: 1,369,859 conv parameters at x2; LF-s adds 8 x (4 x 64 PReLU slopes + 4 scalars), RK2-s
    # 8 x (4 x 64 + 1). BasicSR's EDSR-baseline has exactly the conv parameters.
    assert params == {'EDSR-baseline': 1_369_859, 'LF-s': 1_369_859 + 8 * (4 * 64 + 4),
                      'RK2-s': 1_369_859 + 8 * (4 * 64 + 1)}
    # Same number of 64-channel body convolutions, so the same MACs.
    assert len({row.macs for row in rows}) == 1
    out = capsys.readouterr().out
    assert '| x2 | LF-s (vs EDSR-baseline) | 1,371,939 | 1.000 |' in out
    assert out.count('| x2 | ') == 6  # three rows in the time table, three in the memory table
    for row in rows:
        # On the CPU the traced peak uses the same count as the measured one: equal at the same batch.
        assert row.traced == row.peak > 0
        assert all(seconds > 0 for seconds in row.seconds.values())


def test_a_model_against_its_copy_has_ratios_of_one(one_thread, monkeypatch):
    # A second LF-s in the EDSR-baseline group: timed interleaved with the first.
    monkeypatch.setitem(bench.BASELINE_OF, 'LF-s copy', 'EDSR-baseline')
    args = bench.parse_args([*TINY, '--runs', '4'])
    rows = bench.measure_scale(['LF-s', 'LF-s copy'], 2, args,
                               builders={'LF-s copy': lambda scale: bench.build('LF-s', scale)})
    by_name = {row.model: row for row in rows}
    assert list(by_name) == ['EDSR-baseline', 'LF-s', 'LF-s copy']
    original, copy = by_name['LF-s'], by_name['LF-s copy']
    assert (copy.params, copy.macs, copy.peak, copy.traced) == (original.params, original.macs, original.peak,
                                                                original.traced)
    # Timing on a shared machine is noisy; identical work must still land in the same range.
    assert 0.5 < bench.paired_ratio(copy, original, 'cpu') < 2


def test_paper_size_trace_scales_with_the_batch():
    make = bench.builders_for(['LF-s'], None)['LF-s']
    one, four = (bench.traced_peak(make, 2, batch, 48) for batch in (1, 4))
    # The activations grow with the batch; gradients and Adam's temporaries do not.
    assert 2 < four / one < 4


@pytest.mark.parametrize('count', [2, 3, 5])
def test_round_order_balances_positions_and_predecessors(count: int):
    names = [f'model{i}' for i in range(count)]
    orders = [bench.round_order(names, r) for r in range(2 * count)]
    assert all(sorted(order) == names for order in orders)
    # Over 2n rounds every model runs in every position twice.
    positions = [(name, order.index(name)) for order in orders for name in names]
    assert all(positions.count(pair) == 2 for pair in positions) and len(set(positions)) == count * count
    if count <= 3:
        # The groups timed together (an EDSR and up to two OISR models): each model also runs right after
        # each of the others equally often.
        followers = [(a, b) for order in orders for a, b in zip(order, order[1:], strict=False)]
        assert len(set(followers)) == count * (count - 1)
        assert all(followers.count(pair) == len(followers) // len(set(followers)) for pair in followers)


@pytest.mark.parametrize('op_name, expected', [
    ('aten::convolution_backward', 'convolution'),
    ('aten::mkldnn_convolution', 'convolution'),
    ('autograd::engine::evaluate_function: ConvolutionBackward0', 'convolution'),
    ('aten::_prelu_kernel_backward', 'PReLU / ReLU'),
    ('aten::threshold_backward', 'PReLU / ReLU'),
    ('aten::clamp_min_', 'PReLU / ReLU'),
    ('aten::addcmul_', 'other element-wise'),
    ('aten::sum', 'other element-wise'),
    ('aten::pixel_shuffle', 'rest'),
])
def test_profile_categories(op_name: str, expected: str):
    assert bench.category(op_name) == expected


def test_fast_paths_apply_to_every_model_of_the_table(one_thread, capsys):
    rows = bench.main(['--models', 'LF-s', '--precision', 'bf16', '--channels-last', *TINY])
    out = capsys.readouterr().out
    assert "AccelerationOptions(precision='bf16', channels_last=True, compile=False)" in out
    assert [row.model for row in rows] == ['EDSR-baseline', 'LF-s']
    step = bench.TrainStep(bench.build('LF-s', 2), 2, 1, 8, torch.device('cpu'), bench.parse_args(
        ['--precision', 'bf16', '--channels-last']).acceleration)
    step()
    assert step.lq.is_contiguous(memory_format=torch.channels_last)
    convs = [module for module in step.net.modules() if isinstance(module, torch.nn.Conv2d)]
    assert convs and all(conv.weight.is_contiguous(memory_format=torch.channels_last) for conv in convs)
    # Weights and their gradients stay fp32 under bf16 autocast.
    assert all(p.grad.dtype == torch.float32 for p in step.net.parameters())


def test_compile_switch_is_validated_like_the_option_file(capsys):
    assert bench.parse_args(['--compile']).acceleration.compile_mode == 'default'
    assert bench.parse_args(['--compile', 'max-autotune']).acceleration.compile_mode == 'max-autotune'
    assert bench.parse_args([]).acceleration.compile_mode is None
    with pytest.raises(SystemExit):
        bench.parse_args(['--compile', 'fast'])
    assert ("acceleration.compile: not an allowed value; got 'fast'; allowed: true or false (a YAML boolean, unquoted) "
            "or 'default', 'reduce-overhead'") in capsys.readouterr().err


def test_pytorch_prelu_variant_is_the_same_network_with_nn_prelu(one_thread):
    rows = bench.main(['--models', 'LF-s', '--pytorch-prelu', *TINY])
    assert [(row.model, row.baseline) for row in rows] == [
        ('EDSR-baseline', 'EDSR-baseline'), ('LF-s', 'EDSR-baseline'), ('LF-s + nn.PReLU', 'EDSR-baseline')]
    ours, plain = bench.build('LF-s', 2), bench.build('LF-s + nn.PReLU', 2)
    assert ours.state_dict().keys() == plain.state_dict().keys()
    prelus = [type(module) for module in plain.modules() if isinstance(module, torch.nn.PReLU)]
    assert len(prelus) == 32 and set(prelus) == {torch.nn.PReLU}
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(ours(x), plain(x), rtol=0, atol=0)
    assert rows[1].params == rows[2].params and rows[1].macs == rows[2].macs


def test_relu_bound_variant_is_the_model_with_zero_slopes(one_thread):
    rows = bench.main(['--models', 'RK2-s', '--pytorch-prelu', '--relu-bound', *TINY])
    assert [(row.model, row.baseline) for row in rows] == [
        ('EDSR-baseline', 'EDSR-baseline'), ('RK2-s', 'EDSR-baseline'), ('RK2-s + nn.PReLU', 'EDSR-baseline'),
        ('RK2-s + ReLU', 'EDSR-baseline')]
    bound = bench.build('RK2-s + ReLU', 2)
    assert not any(isinstance(module, torch.nn.PReLU) for module in bound.modules())
    assert sum(isinstance(module, torch.nn.ReLU) for module in bound.modules()) == 32
    # The 32 x 64 slopes are gone; convolutions and the blocks' scalars are those of the model.
    assert rows[3].params == rows[1].params - 32 * 64 and rows[3].macs == rows[1].macs
    # A PReLU with slope 0 is a ReLU: the paper model with zero slopes computes the same function.
    model = bench.build('RK2-s', 2)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.PReLU):
                module.weight.zero_()
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(bound(x), model(x), rtol=0, atol=0)


def test_variant_names_split_into_model_and_suffix():
    assert bench.split_variant('LF-s + ReLU') == ('LF-s', ' + ReLU')
    assert bench.split_variant('RK3 + nn.PReLU') == ('RK3', ' + nn.PReLU')
    assert bench.split_variant('EDSR-baseline') == ('EDSR-baseline', None)
    assert bench.baseline_of('RK3 + ReLU') == 'EDSR'


def test_keep_freed_memory_switch_and_page_fault_column(one_thread, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(bench, 'keep_freed_cpu_memory', lambda: calls.append('kept') or True)
    rows = bench.main(['--models', 'LF-s', '--keep-freed-memory', *TINY])
    out = capsys.readouterr().out
    assert calls == ['kept'] and 'CPU, 1 thread(s), freed CPU memory kept;' in out
    # One page-fault count per row: the twelfth cell of the time table.
    lines = [line for line in out.splitlines() if line.startswith('| x2 |') and ' ms |' in line]
    assert len(lines) == 2
    for line, row in zip(lines, rows, strict=True):
        assert line.split('|')[12].strip() == f'{row.page_faults:,.0f}'
    monkeypatch.setattr(bench, 'keep_freed_cpu_memory', lambda: False)
    with pytest.raises(SystemExit, match=r'--keep-freed-memory needs glibc \(its mallopt\)'):
        bench.main(['--models', 'LF-s', '--keep-freed-memory', *TINY])
    bench.main(['--models', 'LF-s', *TINY])
    assert 'CPU, 1 thread(s), default CPU allocator;' in capsys.readouterr().out
