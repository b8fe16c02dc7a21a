"""How long ``oisr <subcommand> --help`` takes, each in a fresh process, and what it imports.

    python -m benchmarks.bench_cli_help [--runs 3] [--baseline-root PATH]

Each subcommand's ``python -m oisr_cli <subcommand> --help`` runs ``--runs`` times in a new interpreter (what a
user's shell does); the figure is the median wall time, with whether torch or BasicSR was imported on the way
(``python -X importtime``). ``--baseline-root`` names another checkout of the project, whose ``oisr_cli`` runs
the same commands alternately with this one, so that both see the same machine load; the table then gives the
baseline's time and the ratio (none for a subcommand the baseline lacks). The machine's load average is printed
before and after.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ('torch', 'basicsr')


def subcommands(root: Path) -> list[str]:
    """The subcommands of the ``oisr`` command of the checkout ``root``, in ``oisr --help``'s order."""
    code = 'from oisr_cli.main import SUBCOMMANDS\nprint(*(command.name for command in SUBCOMMANDS))'
    return _run(root, ['-c', code]).stdout.split()


def _run(root: Path, arguments: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHONPATH': str(root)}
    return subprocess.run([sys.executable, *arguments], cwd=root, env=env, capture_output=True, text=True,
                          check=True, timeout=300)


def time_help(root: Path, subcommand: str) -> float:
    """Seconds of one ``python -m oisr_cli <subcommand> --help`` with ``root``'s ``oisr_cli``."""
    start = time.perf_counter()
    _run(root, ['-m', 'oisr_cli', subcommand, '--help'])
    return time.perf_counter() - start


def heavy_imports(root: Path, subcommand: str) -> list[str]:
    """Which of :data:`HEAVY_MODULES` the help imports, from ``python -X importtime``'s report."""
    report = _run(root, ['-X', 'importtime', '-m', 'oisr_cli', subcommand, '--help']).stderr
    imported = {line.rsplit('|', 1)[-1].strip() for line in report.splitlines() if line.startswith('import time:')}
    return [name for name in HEAVY_MODULES if name in imported]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--runs', type=int, default=3, help='runs per subcommand; the median counts (default: 3)')
    parser.add_argument('--baseline-root', type=Path, help='another checkout to compare with, run alternately')
    parser.add_argument('--subcommands', nargs='+', help='only these (default: every subcommand)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    """Print the Markdown table; returns its rows."""
    args = parse_args(argv)
    names = args.subcommands or subcommands(REPOSITORY)
    baseline_names = subcommands(args.baseline_root) if args.baseline_root is not None else []
    print(f'load average (1, 5, 15 min) before: {", ".join(f"{load:.1f}" for load in os.getloadavg())}')
    header = '| Subcommand | `--help` (s) | imports torch / BasicSR |'
    rule = '|---|---|---|'
    if args.baseline_root is not None:
        header += ' baseline (s) | ratio |'
        rule += '---|---|'
    print(header)
    print(rule)
    rows = []
    for name in names:
        times, baseline = [], []
        for _ in range(args.runs):
            times.append(time_help(REPOSITORY, name))
            if name in baseline_names:  # a subcommand the baseline lacks has a time alone
                baseline.append(time_help(args.baseline_root, name))
        row = {'subcommand': name, 'seconds': statistics.median(times), 'heavy': heavy_imports(REPOSITORY, name)}
        line = f'| `{name}` | {row["seconds"]:.2f} | {", ".join(row["heavy"]) or "no"} |'
        if baseline:
            row['baseline'] = statistics.median(baseline)
            line += f' {row["baseline"]:.2f} | {row["baseline"] / row["seconds"]:.0f}x |'
        elif args.baseline_root is not None:
            line += ' | |'
        rows.append(row)
        print(line, flush=True)
    print(f'load average (1, 5, 15 min) after: {", ".join(f"{load:.1f}" for load in os.getloadavg())}')
    return rows


if __name__ == '__main__':
    main()
