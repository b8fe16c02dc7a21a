"""Clusters on one machine: two torchrun agents as two nodes (torchrun's own c10d rendezvous and restarts, gloo),
a killed worker, a node lost for good, and SLURM's launcher with the variables srun sets, requeued.

The end-to-end runs train the same tiny OISR for 8 iterations, one image per process: 2 iterations per epoch. A
training state is saved every 3 iterations; an interrupted run is stopped after iteration 5, the first of epoch 2,
so the newest complete state, of iteration 3, lies in the middle of epoch 1.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import (
    REPO_ROOT,
    TORCHRUN,
    TRAIN_WORKER,
    final_weights,
    finish_run,
    iterations_logged,
    pids_when_paused,
    start_run,
    tiny_train_options,
    write_paired_folders,
)

from oisr_basicsr import cluster
from oisr_basicsr.errors import DistributedRunError, RunLockError

NAME = 'cluster'
NODES = 2
TOTAL_ITER, SAVE_EVERY, STOPPED_AFTER = 8, 3, 5
RESUMED = f'Resuming training from epoch: 1, iter: {SAVE_EVERY}.'
WORKER = [str(TRAIN_WORKER), '-opt', 'options.yml', '--launcher', 'pytorch']
# The node that lost its peer notices at once (the peer's connections close); this leaves room for a loaded machine.
LOST_NODE_BOUND = 120
# What scripts/slurm_train.sbatch passes to every task.
SLURM_SCRIPT = REPO_ROOT / 'scripts' / 'slurm_train.sbatch'
SLURM_FLAGS = ['--launcher', 'slurm', '--auto_resume']


@pytest.fixture(scope='module')
def cluster_options(tmp_path_factory) -> dict:
    options = tiny_train_options(*write_paired_folders(tmp_path_factory.mktemp('images')), NAME, TOTAL_ITER)
    options['datasets']['train']['batch_size_per_gpu'] = 1
    options['logger']['save_checkpoint_freq'] = SAVE_EVERY
    options['train']['ema_decay'] = 0.9
    options['val']['val_freq'] = 4
    return options


@pytest.fixture(scope='module')
def uninterrupted(cluster_options, tmp_path_factory) -> dict[str, torch.Tensor]:
    """The final weights of one node running two processes, never interrupted."""
    workdir = _with_options(tmp_path_factory.mktemp('uninterrupted'), cluster_options)
    run = start_run([*TORCHRUN, '-m', 'oisr_basicsr.train', '-opt', 'options.yml', '--launcher', 'pytorch'], workdir)
    output = finish_run(run, workdir)
    assert run.returncode == 0, output[-4000:]
    return final_weights(workdir, NAME)


def _with_options(folder: Path, options: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'options.yml').write_text(yaml.safe_dump(options))
    return folder


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _start_nodes(workdirs: list[Path], arguments: list[str], max_restarts: int, port: int, log_prefix: str = 'node',
                 **env: str) -> list[subprocess.Popen]:
    """A torchrun agent per node, one worker each, meeting at torchrun's c10d rendezvous on ``127.0.0.1:port``,
    which node 0 hosts as the node an endpoint names does. Node n runs in ``workdirs[n]`` and writes its output to
    ``<log_prefix><n>.log`` there. The rendezvous orders the nodes by address: node 0's is the lower, its worker
    is rank 0."""
    addresses = ['127.0.0.1', 'localhost']
    return [start_run([sys.executable, '-m', 'torch.distributed.run', f'--nnodes={NODES}', '--nproc_per_node=1',
                       '--rdzv_backend=c10d', f'--rdzv_endpoint=127.0.0.1:{port}', f'--rdzv_id={NAME}',
                       f'--rdzv_conf=is_host={int(node == 0)}', f'--local-addr={addresses[node]}',
                       f'--max-restarts={max_restarts}', *arguments],
                      workdirs[node], f'{log_prefix}{node}.log', **env) for node in range(NODES)]


def _start_slurm_tasks(workdir: Path, port: int, log_prefix: str, **env: str) -> list[subprocess.Popen]:
    """The tasks ``srun`` starts for a job of two nodes, one task each, with the variables srun sets. ``scontrol``
    does not exist here: like a job script may, the job sets ``MASTER_ADDR``, which the package then takes as is."""
    return [start_run([sys.executable, str(TRAIN_WORKER), '-opt', 'options.yml', *SLURM_FLAGS], workdir,
                      f'{log_prefix}{task}.log', SLURM_JOB_ID='4242', SLURM_NNODES=str(NODES), SLURM_NTASKS=str(NODES),
                      SLURM_PROCID=str(task), SLURM_NODEID=str(task), SLURM_LOCALID='0', SLURM_NODELIST='node[1-2]',
                      SLURM_JOB_NODELIST='node[1-2]', SLURMD_NODENAME=f'node{task + 1}', MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(port), **env) for task in range(NODES)]


def _finish_all(processes: list[subprocess.Popen], workdirs: list[Path], log_prefix: str) -> list[str]:
    outputs = [finish_run(process, workdir, f'{log_prefix}{n}.log')
               for n, (process, workdir) in enumerate(zip(processes, workdirs, strict=True))]
    assert [process.returncode for process in processes] == [0] * len(processes), \
        '\n'.join(output[-3000:] for output in outputs)
    return outputs


def _assert_resumed_exactly(output: str, workdir: Path, uninterrupted: dict[str, torch.Tensor]) -> None:
    """Rank 0's ``output`` resumed once, from the state of iteration 3, and logged every later iteration once;
    the run's final weights are the uninterrupted run's."""
    _, resumed, after = output.partition(RESUMED)
    assert resumed, output[-4000:]
    assert RESUMED not in after
    assert iterations_logged(after) == list(range(SAVE_EVERY + 1, TOTAL_ITER + 1))
    result = final_weights(workdir, NAME)
    assert result.keys() == uninterrupted.keys()
    for key, expected in uninterrupted.items():
        torch.testing.assert_close(result[key], expected, msg=key)


def _assert_replicas_equal(weights_dir: Path) -> None:
    replicas = [torch.load(weights_dir / f'rank{rank}.pth') for rank in range(NODES)]
    assert all(torch.equal(replicas[0][key], replicas[1][key]) for key in replicas[0])


@pytest.mark.slow
def test_two_nodes_train_as_one_node_with_two_processes(tmp_path, cluster_options, uninterrupted):
    config = _with_options(tmp_path / 'config', cluster_options)
    nodes, weights, samples = (tmp_path / 'node0', tmp_path / 'node1'), tmp_path / 'weights', tmp_path / 'samples'
    for folder in (*nodes, weights, samples):
        folder.mkdir()
    # Each node in a folder of its own, as on nodes without a shared file system.
    agents = _start_nodes(list(nodes), [*WORKER[:2], str(config / 'options.yml'), *WORKER[3:]], 0, _free_port(),
                          WEIGHTS_OUT=str(weights), SAMPLES_OUT=str(samples))
    _finish_all(agents, list(nodes), 'node')

    # Every epoch's four images were shared out between the ranks, none to both.
    seen = [dict(line.split() for line in (samples / f'rank{rank}.txt').read_text().splitlines())
            for rank in range(NODES)]
    assert list(seen[0]) == list(seen[1]) == [str(iteration) for iteration in range(1, TOTAL_ITER + 1)]
    for first in range(1, TOTAL_ITER + 1, 2):
        epoch = [seen[rank][str(iteration)] for rank in range(NODES) for iteration in (first, first + 1)]
        assert sorted(epoch) == [f'img{i}.png' for i in range(4)], seen

    # Rank 0 alone wrote checkpoints, the log and tensorboard events; node 1 holds only its launcher's output.
    assert [path.name for path in nodes[1].rglob('*')] == ['node1.log']
    experiment = nodes[0] / 'experiments' / NAME
    assert sorted(path.name for path in (experiment / 'models').iterdir()) == \
        ['net_g_3.pth', 'net_g_6.pth', 'net_g_latest.pth']
    assert sorted(path.name for path in (experiment / 'training_states').iterdir()) == ['3.state', '6.state']
    [log] = experiment.glob('train_*.log')
    assert 'World size (gpu number): 2' in log.read_text()
    assert len(list((nodes[0] / 'tb_logger' / NAME).iterdir())) == 1

    _assert_replicas_equal(weights)
    result = final_weights(nodes[0], NAME)
    for key, expected in uninterrupted.items():
        torch.testing.assert_close(result[key], expected, msg=key)


@pytest.mark.slow
def test_killed_worker_is_restarted_and_its_group_resumes_by_itself(tmp_path, cluster_options, uninterrupted):
    workdir = _with_options(tmp_path / 'run', cluster_options)
    weights = tmp_path / 'weights'
    weights.mkdir()
    # Every start runs the same command, without --auto_resume.
    agents = _start_nodes([workdir] * NODES, WORKER, 1, _free_port(), PAUSE_AT_ITER=str(STOPPED_AFTER),
                          PAUSE_MARKER=str(tmp_path / 'paused'), PAUSE_RANKS='1', WEIGHTS_OUT=str(weights))
    # Rank 1 stops after iteration 5 while rank 0 waits for it in iteration 6's gradient exchange.
    [paused] = pids_when_paused(agents, tmp_path / 'paused', [1])
    os.kill(paused, signal.SIGKILL)
    outputs = _finish_all(agents, [workdir] * NODES, 'node')

    first_start = outputs[0].partition(RESUMED)[0]
    assert iterations_logged(first_start) == list(range(1, STOPPED_AFTER + 1))
    _assert_resumed_exactly(outputs[0], workdir, uninterrupted)
    _assert_replicas_equal(weights)


@pytest.mark.slow
def test_node_lost_for_good_ends_the_run_in_bounded_time_and_the_next_launch_resumes(tmp_path, cluster_options,
                                                                                      uninterrupted):
    workdir = _with_options(tmp_path / 'run', cluster_options)
    # The documented command: with --auto_resume a new launch continues too.
    command, port = [*WORKER, '--auto_resume'], _free_port()
    agents = _start_nodes([workdir] * NODES, command, 0, port, PAUSE_AT_ITER=str(STOPPED_AFTER),
                          PAUSE_MARKER=str(tmp_path / 'paused'), PAUSE_RANKS='1')
    [paused] = pids_when_paused(agents, tmp_path / 'paused', [1])
    # Node 1 goes, its agent and its worker at once.
    os.killpg(agents[1].pid, signal.SIGKILL)
    os.kill(paused, signal.SIGKILL)
    agents[1].wait(timeout=60)
    output = finish_run(agents[0], workdir, 'node0.log', timeout=LOST_NODE_BOUND)
    assert agents[0].returncode != 0
    assert iterations_logged(output) == list(range(1, STOPPED_AFTER + 1))
    assert ('error: rank 0 of 2: another process of the distributed run stopped or cannot be reached (') in output
    assert re.search(r'exitcode\s*: 2 ', output), output[-3000:]  # the worker's own stop, as torchrun reports it
    assert sorted(path.name for path in (workdir / 'experiments' / NAME / 'training_states').iterdir()) == \
        ['3.state']

    agents = _start_nodes([workdir] * NODES, command, 0, port, log_prefix='relaunch')
    outputs = _finish_all(agents, [workdir] * NODES, 'relaunch')
    _assert_resumed_exactly(outputs[0], workdir, uninterrupted)


@pytest.mark.slow
def test_slurm_job_of_two_nodes_resumes_when_requeued(tmp_path, cluster_options, uninterrupted):
    assert ' '.join(SLURM_FLAGS) in SLURM_SCRIPT.read_text()
    workdir = _with_options(tmp_path / 'run', cluster_options)
    tasks = _start_slurm_tasks(workdir, _free_port(), 'task', PAUSE_AT_ITER=str(STOPPED_AFTER),
                               PAUSE_MARKER=str(tmp_path / 'paused'))
    # Preempted after iteration 5: SLURM kills every task of the job.
    for pid in pids_when_paused(tasks, tmp_path / 'paused', range(NODES)):
        os.kill(pid, signal.SIGKILL)
    for task in tasks:
        task.wait(timeout=60)
    # Iteration 5's log line would follow its update, where the tasks stopped.
    assert iterations_logged((workdir / 'task0.log').read_text()) == list(range(1, STOPPED_AFTER))
    assert sorted(path.name for path in (workdir / 'experiments' / NAME / 'training_states').iterdir()) == \
        ['3.state']

    # The requeued job runs the same command; SLURM counts the requeue.
    tasks = _start_slurm_tasks(workdir, _free_port(), 'requeued', SLURM_RESTART_COUNT='1')
    outputs = _finish_all(tasks, [workdir] * NODES, 'requeued')
    _assert_resumed_exactly(outputs[0], workdir, uninterrupted)


# ---------------------------------------------------------------------------------------------------------------
# The process group's start, in processes of their own (a process group is started once per process).

# Only the module under test and torch: importing the package (BasicSR, the registries) takes seconds and is not
# what is tested. A rank says 'starting' when it is about to.
START = '''
import sys, types
package = types.ModuleType('oisr_basicsr')
package.__path__ = [sys.argv[2]]
sys.modules['oisr_basicsr'] = package
from datetime import timedelta
import torch
import torch.distributed as dist
from oisr_basicsr import cluster
from oisr_basicsr.errors import report_user_errors
print('starting', flush=True)
with report_user_errors():
    cluster.start_process_group('gloo', timedelta(seconds=float(sys.argv[1])))
total = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(total)
print(f'sum {total.item()} restarted {cluster.restarted_by_launcher()}', flush=True)
# Leave together: rank 0 hosts the group's store, and a rank whose store vanishes while it exits may abort.
dist.barrier()
dist.destroy_process_group()
'''


def _start_rank(rank: int, world_size: int, port: int, start_timeout: float, **env: str) -> subprocess.Popen:
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore', 'OMP_NUM_THREADS': '1', 'RANK': str(rank),
           'WORLD_SIZE': str(world_size), 'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(port), **env}
    package = Path(cluster.__file__).parent
    return subprocess.Popen([sys.executable, '-c', START, str(start_timeout), str(package)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _outputs(ranks: list[subprocess.Popen], timeout: float) -> list[tuple[str, str]]:
    """Every rank's (stdout, stderr); a rank still running after ``timeout`` seconds (in all) is killed and fails
    the test."""
    deadline = time.monotonic() + timeout
    try:
        return [rank.communicate(timeout=max(deadline - time.monotonic(), 0)) for rank in ranks]
    except subprocess.TimeoutExpired:
        for rank in ranks:
            rank.kill()
            rank.communicate()
        pytest.fail(f'a rank was still waiting after {timeout} s')


@pytest.mark.slow
@pytest.mark.parametrize('earlier_store', ['gone', 'port reused'])
def test_restarted_group_meets_past_what_the_earlier_start_left_and_agrees_it_restarted(earlier_store):
    # torchrun's store, as its agent keeps it across restarts: it still names the store of the earlier start,
    # whose rank 0 is gone (or whose port now serves another store). Rank 1 starts first, rank 0 once rank 1 is
    # starting, with restart counts 0 and 1 (node 0's agent restarted for the membership change, node 1's for its
    # failed worker).
    launcher_store = torch.distributed.TCPStore('127.0.0.1', 0, is_master=True, wait_for_workers=False)
    other_store = torch.distributed.TCPStore('127.0.0.1', 0, is_master=True, wait_for_workers=False)
    other_store.set(cluster.TOKEN_KEY, 'another')
    earlier_port = _free_port() if earlier_store == 'gone' else other_store.port
    launcher_store.set(cluster.PUBLISHED_STORE_KEY, f'{earlier_port} earlier')
    agent = {'TORCHELASTIC_USE_AGENT_STORE': 'True'}
    rank1 = _start_rank(1, 2, launcher_store.port, 60, TORCHELASTIC_RESTART_COUNT='1', **agent)
    assert rank1.stdout.readline() == 'starting\n'
    ranks = [_start_rank(0, 2, launcher_store.port, 60, TORCHELASTIC_RESTART_COUNT='0', **agent), rank1]
    results = _outputs(ranks, timeout=180)
    assert [rank.returncode for rank in ranks] == [0, 0], [err[-3000:] for _, err in results]
    assert [out for out, _ in results] == ['starting\nsum 3.0 restarted True\n', 'sum 3.0 restarted True\n']


@pytest.mark.slow
def test_start_ends_at_its_bound_naming_the_rank_that_did_not_come():
    # A rank 0 whose rank 1 never starts, and a rank 1 whose rank 0 never does: SLURM's way, rank 0 hosts the store.
    lone_host, lone_client = _free_port(), _free_port()
    ranks = [_start_rank(0, 2, lone_host, 3), _start_rank(1, 2, lone_client, 3)]
    # 3 s of waiting, after a start of the interpreter that takes seconds (more on a loaded machine).
    results = _outputs(ranks, timeout=100)
    assert [rank.returncode for rank in ranks] == [2, 2]
    assert results[0][1] == (f'error: the distributed run did not start: rank 0 of 2 (MASTER_ADDR 127.0.0.1, '
                             f'MASTER_PORT {lone_host}, waited up to 3 s): rank(s) 1 did not join. Start the same '
                             'command on every node, and check that every node reaches MASTER_ADDR.\n')
    assert results[1][1] == (f'error: the distributed run did not start: rank 1 of 2 (MASTER_ADDR 127.0.0.1, '
                             f'MASTER_PORT {lone_client}, waited up to 3 s): nothing answered at '
                             f'127.0.0.1:{lone_client} (is rank 0 running?). Start the same command on every node, '
                             'and check that every node reaches MASTER_ADDR.\n')


@pytest.mark.parametrize(('variable', 'value', 'restarted'), [
    ('TORCHELASTIC_RESTART_COUNT', '2', True), ('SLURM_RESTART_COUNT', '1', True),
    ('TORCHELASTIC_RESTART_COUNT', '0', False), (None, None, False)])
def test_restart_is_read_from_the_launchers_count(monkeypatch, variable, value, restarted):
    for name in cluster.RESTART_COUNT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if variable:
        monkeypatch.setenv(variable, value)
    assert cluster.restarted_by_launcher() is restarted


def _in_group_of_two(monkeypatch) -> None:
    monkeypatch.setattr(cluster.dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(cluster.dist, 'get_world_size', lambda: 2)
    monkeypatch.setattr(cluster.dist, 'get_rank', lambda: 0)


def test_lost_peer_becomes_one_line_that_says_how_to_continue(monkeypatch):
    _in_group_of_two(monkeypatch)
    gloo = RuntimeError('[third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:37300: '
                        'Connection reset by peer. This is typically caused by a remote worker hanging.\nmore')
    with pytest.raises(DistributedRunError) as stopped, cluster.stop_on_lost_process():
        raise gloo
    assert str(stopped.value) == (
        'rank 0 of 2: another process of the distributed run stopped or cannot be reached ([third_party/gloo/gloo/'
        'transport/tcp/pair.cc:545] Read error [127.0.0.1]:37300: Connection reset by peer. This is typically '
        'caused by a remote worker hanging.); this one stops too. Run the same command with --auto_resume to '
        'continue from the newest complete training state (a group that torchrun restarts, --max-restarts, '
        'resumes by itself).')


@pytest.mark.parametrize('error', [RuntimeError('mat1 and mat2 shapes cannot be multiplied'),
                                   RunLockError('experiments/x is in use by another run')])
def test_other_errors_pass_unchanged(monkeypatch, error):
    _in_group_of_two(monkeypatch)
    with pytest.raises(type(error)) as raised, cluster.stop_on_lost_process():
        raise error
    assert raised.value is error


def test_first_slurm_node_asks_scontrol(tmp_path, monkeypatch):
    scontrol = tmp_path / 'scontrol'
    scontrol.write_text('#!/bin/sh\n[ "$1 $2 $3" = "show hostnames gpu[07-08]" ] && printf "gpu07\\ngpu08\\n"\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv('PATH', f'{tmp_path}{os.pathsep}{os.environ["PATH"]}')
    assert cluster.first_slurm_node('gpu[07-08]') == 'gpu07'


def test_without_scontrol_or_master_addr_slurm_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path))  # no scontrol
    with pytest.raises(DistributedRunError) as error:
        cluster.first_slurm_node('gpu[07-08]')
    assert str(error.value).startswith(
        '--launcher slurm: MASTER_ADDR is not set and `scontrol show hostnames gpu[07-08]` gave no host (')
    assert str(error.value).endswith('); set MASTER_ADDR to the first node of the job.')


def test_start_outside_a_launcher_names_the_missing_variable(monkeypatch):
    monkeypatch.delenv('RANK', raising=False)
    with pytest.raises(DistributedRunError) as error:
        cluster.start_process_group('gloo')
    assert str(error.value) == ('RANK is not set: start a distributed run with torchrun (--launcher pytorch) or srun '
                                '(--launcher slurm), which set it.')
