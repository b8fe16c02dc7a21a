"""The option schema: for each block, an unknown key with a suggestion, a wrong type, a value out of range, a value
outside an enumeration and a missing key are each refused with one line naming the dotted key."""

import copy
import sys

import pytest
import yaml
from conftest import REPO_ROOT, tiny_train_options

from oisr_basicsr.options import OptionError, check_option_schema, read_option_file, reference_page
from oisr_basicsr.options.schema import values
from oisr_basicsr.options.schema.datasets import dataset_block

OPTIONS = REPO_ROOT / 'options'


def _shipped(name: str) -> dict:
    return read_option_file(OPTIONS / name)


def _tiny() -> dict:
    return tiny_train_options('hr', 'lr', 'schema', total_iter=2)


def _set(path: str, value: object):
    def mutate(opt: dict) -> None:
        *parents, last = path.split('.')
        block = opt
        for parent in parents:
            block = block[parent]
        block[last] = value
    return mutate


def _drop(path: str):
    def mutate(opt: dict) -> None:
        *parents, last = path.split('.')
        block = opt
        for parent in parents:
            block = block[parent]
        del block[last]
    return mutate


BOOL = 'allowed: true or false (a YAML boolean, unquoted)'

CASES = {
    # top level
    'top-unknown': (_tiny, _set('nme', 'x'), 'nme: unknown key; did you mean name?'),
    'top-type': (_tiny, _set('name', 5), 'name: wrong type; got 5; allowed: a string'),
    'top-range': (_tiny, _set('manual_seed', -1), 'manual_seed: out of range; got -1; allowed: >= 0'),
    'top-enum': (_tiny, _set('model_type', 'SRModle'),
                 "model_type: not a registered model; got 'SRModle'; did you mean SRModel?; allowed: "),
    'top-enum-num-gpu': (_tiny, _set('num_gpu', 'all'),
                         "num_gpu: not an allowed value; got 'all'; allowed: an integer or 'auto'"),
    'top-missing': (_tiny, _drop('name'), 'name: required key is missing'),
    # datasets
    'datasets-unknown': (_tiny, _set('datasets.train.use_hfilp', True),
                         'datasets.train.use_hfilp: unknown key; did you mean use_hflip?'),
    'datasets-type': (_tiny, _set('datasets.train.use_hflip', 'false'),
                      f"datasets.train.use_hflip: wrong type; got 'false'; {BOOL}"),
    'datasets-range': (_tiny, _set('datasets.train.num_worker_per_gpu', -1),
                       'datasets.train.num_worker_per_gpu: out of range; got -1; allowed: >= 0'),
    'datasets-range-batch': (_tiny, _set('datasets.train.batch_size_per_gpu', 0),
                             'datasets.train.batch_size_per_gpu: out of range; got 0; allowed: > 0'),
    'datasets-enum': (_tiny, _set('datasets.train.io_backend.type', 'disc'),
                      "datasets.train.io_backend.type: not an allowed value; got 'disc'; allowed: 'disk', 'lmdb' or "
                      "'memcached'"),
    'datasets-enum-type': (_tiny, _set('datasets.val.type', 'PairedImageDatset'),
                           "datasets.val.type: not a registered dataset; got 'PairedImageDatset'; did you mean "
                           'PairedImageDataset?; allowed: '),
    'datasets-missing': (_tiny, _drop('datasets.train.batch_size_per_gpu'),
                         'datasets.train.batch_size_per_gpu: required key is missing (a training dataset needs it)'),
    'datasets-missing-root': (_tiny, _drop('datasets.val.dataroot_lq'),
                              'datasets.val.dataroot_lq: required key is missing'),
    # a dataset the schema does not declare: its keys are those its module reads from its options
    'datasets-source-keys': (_tiny, _set('datasets.val', {'name': 'faces', 'type': 'FFHQDataset', 'dataroot_gt': 'x',
                                                          'io_backend': {'type': 'disk'}, 'use_flip': True}),
                             'datasets.val.use_flip: unknown key; did you mean use_hflip?'),
    # ... typed from the keys' meaning in BasicSR's datasets
    'datasets-source-type': (_tiny, _set('datasets.val', {'name': 'faces', 'type': 'FFHQDataset', 'dataroot_gt': 'x',
                                                          'io_backend': {'type': 'disk'}, 'use_hflip': 'yes'}),
                             f"datasets.val.use_hflip: wrong type; got 'yes'; {BOOL}"),
    'datasets-source-range': (_tiny, _set('datasets.val', {'name': 'reds', 'type': 'VideoTestDataset',
                                                           'dataroot_gt': 'x', 'dataroot_lq': 'y', 'num_frame': 0,
                                                           'io_backend': {'type': 'disk'}}),
                              'datasets.val.num_frame: out of range; got 0; allowed: > 0'),
    'datasets-source-enum': (_tiny, _set('datasets.val', {'name': 'reds', 'type': 'VideoTestDataset',
                                                          'dataroot_gt': 'x', 'dataroot_lq': 'y', 'padding': 'reflect',
                                                          'io_backend': {'type': 'disk'}}),
                             "datasets.val.padding: not an allowed value; got 'reflect'; allowed: 'replicate', "
                             "'reflection', 'reflection_circle' or 'circle'"),
    'datasets-missing-train': (_tiny, _drop('datasets.train'),
                               'datasets.train: required key is missing (a training run needs it)'),
    'datasets-phase': (_tiny, _set('datasets.valid', {}),
                       "datasets.valid: not a dataset phase; got 'valid'; allowed: train, val, val_1, "),
    # network
    'network-unknown': (_tiny, _set('network_g.num_fet', 8), 'network_g.num_fet: unknown key; did you mean num_feat?'),
    'network-type': (_tiny, _set('network_g.rgb_mean', 'grey'),
                     "network_g.rgb_mean: wrong type; got 'grey'; allowed: a list"),
    'network-range': (_tiny, _set('network_g.num_feat', 0), 'network_g.num_feat: out of range; got 0; allowed: > 0'),
    'network-enum': (_tiny, _set('network_g.type', 'OISRR'),
                     "network_g.type: not a registered architecture; got 'OISRR'; did you mean OISR?; allowed: "),
    'network-missing': (_tiny, _set('network_g', {'type': 'EDSR', 'num_in_ch': 3, 'num_feat': 8}),
                        'network_g.num_out_ch: required key is missing'),
    # train
    'train-unknown': (_tiny, _set('train.total_iters', 5), 'train.total_iters: unknown key; did you mean total_iter?'),
    'train-type': (_tiny, _set('train.total_iter', 'many'),
                   "train.total_iter: not an integer; got 'many'; allowed: an integer"),
    'train-type-lr': (_tiny, _set('train.optim_g.lr', 'fast'),
                      "train.optim_g.lr: not a number; got 'fast'; allowed: a number"),
    'train-type-milestones': (_tiny, _set('train.scheduler.milestones', 3),
                              'train.scheduler.milestones: wrong type; got 3; allowed: a list'),
    'train-range': (_tiny, _set('train.total_iter', 0), 'train.total_iter: out of range; got 0; allowed: > 0'),
    'train-range-ema': (_tiny, _set('train.ema_decay', 1.5),
                        'train.ema_decay: out of range; got 1.5; allowed: < 1'),
    'train-enum': (_tiny, _set('train.scheduler.type', 'StepLR'),
                   "train.scheduler.type: not a registered scheduler; got 'StepLR'; did you mean MultiStepLR?; "
                   'allowed: CosineAnnealingRestartLR, MultiStepLR, MultiStepRestartLR'),
    'train-enum-optim': (_tiny, _set('train.optim_g.type', 'Adamm'),
                         "train.optim_g.type: not a registered optimizer; got 'Adamm'; did you mean Adam?; "
                         'allowed: Adam'),
    'train-enum-loss': (_tiny, _set('train.pixel_opt.reduction', 'avg'),
                        "train.pixel_opt.reduction: not an allowed value; got 'avg'; allowed: 'none', 'mean' or "
                        "'sum'"),
    'train-missing': (_tiny, _drop('train.total_iter'),
                      'train.total_iter: required key is missing (a training run needs it)'),
    'train-missing-lr': (_tiny, _drop('train.optim_g.lr'), 'train.optim_g.lr: required key is missing'),
    # val
    'val-unknown': (_tiny, _set('val.val_frq', 2), 'val.val_frq: unknown key; did you mean val_freq?'),
    'val-unknown-metric': (_tiny, _set('val.metrics.psnr.test_y_chanel', True),
                           'val.metrics.psnr.test_y_chanel: unknown key; did you mean test_y_channel?'),
    'val-type': (_tiny, _set('val.save_img', 'no'), f"val.save_img: wrong type; got 'no'; {BOOL}"),
    'val-range': (_tiny, _set('val.metrics.psnr.crop_border', -1),
                  "val.metrics.psnr.crop_border: out of range; got -1; allowed: >= 0 or 'scale'"),
    'val-range-freq': (_tiny, _set('val.val_freq', 0), 'val.val_freq: out of range; got 0; allowed: > 0'),
    'val-enum': (_tiny, _set('val.metrics.psnr.type', 'psnr'),
                 "val.metrics.psnr.type: not a registered metric; got 'psnr'; allowed: calculate_niqe, "),
    'val-enum-better': (_tiny, _set('val.metrics.psnr.better', 'up'),
                        "val.metrics.psnr.better: not an allowed value; got 'up'; allowed: 'higher' or 'lower'"),
    'val-scale-crop-under-srmodel': (_tiny, _set('val.metrics.psnr.crop_border', 'scale'),
                                     "val.metrics.psnr.crop_border: 'scale' is resolved by NODESRModel only; got "
                                     "'scale' under model_type SRModel; allowed: an integer >= 0"),
    'val-missing': (_tiny, _drop('val.metrics.psnr.crop_border'),
                    'val.metrics.psnr.crop_border: required key is missing'),
    'val-missing-freq': (_tiny, _drop('val.val_freq'),
                         'val.val_freq: required key is missing (a training run with val needs it)'),
    # logger
    'logger-unknown': (_tiny, _set('logger.save_checkpoint_frq', 2),
                       'logger.save_checkpoint_frq: unknown key; did you mean save_checkpoint_freq?'),
    'logger-type': (_tiny, _set('logger.use_tb_logger', 'yes'), f"logger.use_tb_logger: wrong type; got 'yes'; {BOOL}"),
    'logger-range': (_tiny, _set('logger.print_freq', 0), 'logger.print_freq: out of range; got 0; allowed: > 0'),
    'logger-enum': (_tiny, _set('logger.checkpoint_format', 'ckpt'),
                    "logger.checkpoint_format: not an allowed value; got 'ckpt'; allowed: 'pth' or 'safetensors'"),
    'logger-missing': (_tiny, _drop('logger.print_freq'),
                       'logger.print_freq: required key is missing (a training run needs it)'),
    # path
    'path-unknown': (_tiny, _set('path.pretrain_netwrk_g', 'x.pth'),
                     'path.pretrain_netwrk_g: unknown key; did you mean pretrain_network_g?'),
    'path-type': (_tiny, _set('path.trust_checkpoints', 'false'),
                  f"path.trust_checkpoints: wrong type; got 'false'; {BOOL}"),
    'path-type-strict': (_tiny, _set('path.strict_load_g', 1), f'path.strict_load_g: wrong type; got 1; {BOOL}'),
    # ode
    'ode-unknown': (lambda: _shipped('train_NODESR_VDSR.yml'), _set('ode.num_step', 2),
                    'ode.num_step: unknown key; did you mean num_steps?'),
    'ode-type': (lambda: _shipped('train_NODESR_VDSR.yml'), _set('ode.num_steps', 1.5),
                 'ode.num_steps: not an integer; got 1.5; allowed: an integer'),
    'ode-range': (lambda: _shipped('train_NODESR_VDSR.yml'), _set('ode.num_steps', 0),
                  'ode.num_steps: out of range; got 0; allowed: > 0'),
    'ode-enum': (lambda: _shipped('train_NODESR_VDSR.yml'), _set('ode.solver', 'rk5'),
                 "ode.solver: not an allowed value; got 'rk5'; allowed: 'euler', 'midpoint', "),
    'ode-test-scale-range': (lambda: _shipped('test_NODESR_VDSR_B100.yml'), _set('datasets.test_1.test_scale', 1),
                             'datasets.test_1.test_scale: out of range; got 1; allowed: > 1'),
    'ode-test-scale-missing': (lambda: _shipped('test_NODESR_VDSR_B100.yml'), _drop('datasets.test_1.test_scale'),
                               'datasets.test_1.test_scale: required key is missing'),
    # acceleration
    'acceleration-unknown': (lambda: _shipped('train_OISR_LF_s_x2.yml'), _set('acceleration.precison', 'bf16'),
                             'acceleration.precison: unknown key; did you mean precision?'),
    'acceleration-type': (lambda: _shipped('train_OISR_LF_s_x2.yml'), _set('acceleration.channels_last', 'true'),
                          f"acceleration.channels_last: wrong type; got 'true'; {BOOL}"),
    'acceleration-enum': (lambda: _shipped('train_OISR_LF_s_x2.yml'), _set('acceleration.precision', 'fp8'),
                          "acceleration.precision: not an allowed value; got 'fp8'; allowed: 'fp32', 'bf16' or "
                          "'fp16'"),
    'acceleration-enum-compile': (lambda: _shipped('train_OISR_LF_s_x2.yml'), _set('acceleration.compile', 'fast'),
                                  "acceleration.compile: not an allowed value; got 'fast'; " + BOOL
                                  + " or 'default', "),
    'acceleration-type-block': (lambda: _shipped('train_OISR_LF_s_x2.yml'), _set('acceleration', 'bf16'),
                                "acceleration: wrong type; got 'bf16'; allowed: a mapping"),
}


@pytest.mark.parametrize('case', CASES)
def test_schema_refuses_with_the_dotted_key(case):
    make, mutate, message = CASES[case]
    opt = make()
    mutate(opt)
    with pytest.raises(OptionError) as error:
        check_option_schema(opt, training=True)
    assert str(error.value).startswith(message)
    assert '\n' not in str(error.value)


def test_every_key_a_registered_dataset_reads_is_typed():
    """A BasicSR upgrade whose datasets read a new key fails here until the key has a type."""
    from basicsr.utils.registry import DATASET_REGISTRY

    untyped = {}
    for dataset_type, _ in DATASET_REGISTRY:
        block = dataset_block(dataset_type)
        keys = [name for name, field in block.model_fields.items()
                if field.annotation is None or 'Any' in str(field.annotation)]
        if keys:
            untyped[dataset_type] = keys
    assert untyped == {}
    # and the source scan sees the keys: REDS's frame count and Real-ESRGAN's second-order kernels
    assert {'num_frame', 'interval_list'} <= set(dataset_block('REDSDataset').model_fields)
    assert 'kernel_list2' in dataset_block('RealESRGANDataset_basicsr').model_fields


@pytest.mark.parametrize('name', sorted(path.name for path in OPTIONS.glob('*.yml')))
def test_shipped_option_files_pass(name):
    check_option_schema(_shipped(name), training=name.startswith('train_'))


def test_ode_and_acceleration_need_no_key():
    opt = _shipped('train_NODESR_VDSR.yml')
    opt['ode'], opt['acceleration'] = {}, None
    check_option_schema(opt, training=True)


def test_yaml_11_number_strings_are_numbers_with_one_notice(capsys, monkeypatch):
    monkeypatch.setattr(values, '_noticed', set())
    opt = _tiny()
    opt['train']['optim_g']['lr'] = '1e-4'
    opt['val']['val_freq'] = '5e3'
    check_option_schema(opt, training=True)
    check_option_schema(copy.deepcopy(opt), training=True)
    err = capsys.readouterr().err
    assert err.count("note: lr: '1e-4' is read as the number 0.0001") == 1
    assert err.count("note: val_freq: '5e3' is read as the number 5000") == 1


def test_checkpoint_format_and_booleans_accept_their_values():
    opt = _tiny()
    opt['logger']['checkpoint_format'] = 'safetensors'
    opt['path']['trust_checkpoints'] = False
    opt['val']['val_freq'] = 5e3  # !!float 5e3, as BasicSR's files write it
    check_option_schema(opt, training=True)


def test_a_test_file_needs_no_training_keys():
    opt = _tiny()
    for key in ('train', 'logger'):
        del opt[key]
    del opt['val']['val_freq']
    check_option_schema(opt, training=False)
    with pytest.raises(OptionError, match=r'^train: required key is missing \(a training run needs it\)$'):
        check_option_schema(opt, training=True)


def test_tools_need_only_the_network(tmp_path):
    from oisr_basicsr.inference.loading import load_option_file

    path = tmp_path / 'net.yml'
    path.write_text('network_g:\n  type: OISR\n  upscale: 2\n  num_feat: 8\n  num_block: 1\n')
    assert load_option_file(path)['network_g']['num_feat'] == 8
    path.write_text('network_g:\n  type: OISR\n  upscale: 2\nlogger:\n  checkpoint_format: ckpt\n')
    with pytest.raises(OptionError, match=f"^{path}: logger.checkpoint_format: not an allowed value; got 'ckpt'"):
        load_option_file(path)


def test_entry_point_exits_2_with_one_line(tmp_path, paired_folders, monkeypatch, capsys):
    from oisr_cli.commands import train

    opt = tiny_train_options(*paired_folders, 'schema_cli', total_iter=2)
    opt['datasets']['train']['use_hfilp'] = True
    option_file = tmp_path / 'bad.yml'
    option_file.write_text(yaml.safe_dump(opt))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['oisr-train', '-opt', str(option_file)])
    with pytest.raises(SystemExit) as exit_:
        train.main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == 'error: datasets.train.use_hfilp: unknown key; did you mean use_hflip?\n'
    assert not (tmp_path / 'experiments').exists()


def test_options_page_is_generated_from_the_schema(capsys):
    assert reference_page.main(['--check']) == 0, capsys.readouterr().err


def test_nodesr_test_scale_beyond_training_is_announced(capsys, monkeypatch):
    monkeypatch.setattr(values, '_noticed', set())  # notes are said once per process
    opt = _shipped('test_NODESR_RDN_benchmarks.yml')
    check_option_schema(opt)
    notes = [line for line in capsys.readouterr().err.splitlines() if 'beyond the training scales' in line]
    beyond = [(phase, entry['test_scale']) for phase, entry in opt['datasets'].items() if entry['test_scale'] > 4]
    assert len(notes) == len(beyond) > 0
    phase, scale = beyond[0]
    assert notes[0] == (f"note: datasets.{phase}.test_scale: {scale:g} is beyond the training scales (up to 4, the "
                        "recipe's default); NODE-SR extrapolates there")


@pytest.mark.parametrize(('mutate', 'message'), [
    # Each of these used to end in a traceback from BasicSR (its parse_options, or the run much later).
    (_drop('path'), 'path: required key is missing'),
    (_drop('num_gpu'), 'num_gpu: required key is missing'),
    (_set('name', 5), 'name: wrong type; got 5; allowed: a string'),
    (_set('manual_seed', 'abc'), "manual_seed: not an integer; got 'abc'; allowed: an integer"),
    (_set('datasets.train', 5), 'datasets.train: wrong type; got 5; allowed: a mapping'),
    (_set('datasets.train.dataroot_gt', 5), 'datasets.train.dataroot_gt: wrong type; got 5; allowed: a string'),
    (_set('datasets.train.prefetch_mode', 'gpu'),
     "datasets.train.prefetch_mode: not an allowed value; got 'gpu'; allowed: 'cpu' or 'cuda'"),
    (_set('train.scheduler.milestones', 5), 'train.scheduler.milestones: wrong type; got 5; allowed: a list'),
    (_set('train.optim_g.lr', 'fast'), "train.optim_g.lr: not a number; got 'fast'; allowed: a number"),
    (_set('logger.print_freq', 0), 'logger.print_freq: out of range; got 0; allowed: > 0'),
])
def test_former_tracebacks_are_one_line_errors(mutate, message, tmp_path, paired_folders, monkeypatch, capsys):
    from oisr_cli.commands import train

    opt = tiny_train_options(*paired_folders, 'former_traceback', total_iter=2)
    mutate(opt)
    option_file = tmp_path / 'bad.yml'
    option_file.write_text(yaml.safe_dump(opt))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['oisr-train', '-opt', str(option_file)])
    with pytest.raises(SystemExit) as exit_:
        train.main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f'error: {message}\n'
    assert not (tmp_path / 'experiments').exists()
