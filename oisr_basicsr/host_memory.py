"""The host's memory as the gates and the run both measure it: what is left, and how a size reads
(:mod:`oisr_basicsr.memory` builds the estimates of a run's work on these)."""


def available_host_memory() -> int | None:
    """Bytes of memory the system can still give without swapping (Linux ``MemAvailable``); None where unknown."""
    try:
        with open('/proc/meminfo') as meminfo:
            for line in meminfo:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def format_bytes(num_bytes: float) -> str:
    """``num_bytes`` in bytes, KiB, MiB, GiB or TiB, e.g. ``1.5 GiB``."""
    for unit in ('bytes', 'KiB', 'MiB', 'GiB'):
        if num_bytes < 1024:
            return f'{num_bytes:.0f} {unit}' if unit == 'bytes' else f'{num_bytes:.1f} {unit}'
        num_bytes /= 1024
    return f'{num_bytes:.1f} TiB'
