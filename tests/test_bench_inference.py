"""benchmarks/bench_inference.py: input sizes, the paper's MACs, tile MACs, and traced peaks equal to measured ones."""

import torch

from benchmarks import bench_inference as bench


def test_inputs_of_a_720p_output():
    assert [bench.input_size((720, 1280), scale) for scale in (2, 3, 4)] == [(360, 640), (240, 427), (180, 320)]


def test_trace_only_gives_the_papers_macs_and_no_latency(one_thread, capsys):
    rows = bench.main(['--models', 'LF-s', '--scales', '4', '--trace-only'])
    (row, ) = rows
    # OISR.md: 114.2 GMACs for the -s models at x4 and a 1280x720 output.
    assert round(row.macs / 1e9, 1) == 114.2
    # Tiles of 128 with 16 pixels of context on a 320x180 input: 3 x 2 full 128x128 windows. Every layer's
    # MACs are proportional to the pixels it sees, so the windows cost 6 * 128 * 128 / (320 * 180) of the image.
    assert row.tiled_macs * 320 * 180 == row.macs * 6 * 128 * 128
    assert row.seconds == {'whole': None, 'tiled': None}
    # The whole 720p image's activations dwarf a 128x128 tile's.
    assert row.peak['tiled'] < row.peak['whole'] / 2
    assert '| LF-s | x4 | 320x180 | 114.2 | - | - | - | - | - |' in capsys.readouterr().out


def test_tile_macs_equal_the_whole_image_when_one_tile_covers_it():
    with torch.device('meta'):
        net = bench.build_paper_model('LF-s', 2)
    whole = bench.count_macs(net, (1, 3, 20, 30))
    assert bench.tiled_macs(net, (20, 30), tile=64, overlap=8) == whole
    assert bench.tiled_macs(net, (20, 30), tile=16, overlap=4) > whole


def test_measured_peaks_equal_the_traced_ones(one_thread, capsys):
    small = ['--models', 'RK2-s', '--scales', '3', '--output', '50x40', '--tile', '12', '--overlap', '3']
    (measured, ) = bench.main([*small, '--threads', '1'])
    (traced, ) = bench.main([*small, '--trace-only'])
    assert measured.input_hw == (14, 17)  # ceil(40 / 3), ceil(50 / 3); the 42x51 output is cropped to 40x50
    assert measured.memory == 'measured' and traced.memory == 'traced'
    assert measured.peak == traced.peak
    assert measured.seconds['whole'] > 0 and measured.seconds['tiled'] > 0
    table = capsys.readouterr().out
    assert '| RK2-s | x3 | 17x14 |' in table and '(traced)' in table
