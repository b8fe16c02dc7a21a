"""benchmarks.benchmarking: keeping freed CPU memory in the process."""

import ctypes
import ctypes.util
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

# A fresh interpreter per case: the setting holds for the whole process. glibc's mallinfo2 gives the bytes in
# mmap-ed blocks (hblkhd), in use in the heap (uordblks) and of the heap itself (arena) around the allocation
# and the release of a 64 MiB tensor: above 32 MiB, the largest block glibc would ever serve from its heap by
# default.
PROBE = '''
import ctypes, ctypes.util, sys
import torch
from benchmarks.benchmarking import keep_freed_cpu_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',
                                                      'fsmblks', 'uordblks', 'fordblks', 'keepcost')]

libc = ctypes.CDLL(ctypes.util.find_library('c'))
libc.mallinfo2.restype = MallInfo2
kept = keep_freed_cpu_memory() if sys.argv[1] == 'keep' else None
before = libc.mallinfo2()
block = torch.ones(16 * 2**20)
during = libc.mallinfo2()
del block
after = libc.mallinfo2()
print(kept, during.hblkhd - before.hblkhd, during.uordblks - before.uordblks, after.arena - during.arena)
'''
MIB = 2**20


def _has_glibc_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL(ctypes.util.find_library('c')), 'mallinfo2')
    except (OSError, TypeError):
        return False


def probe(mode: str) -> list[str]:
    result = subprocess.run([sys.executable, '-c', PROBE, mode], capture_output=True, text=True, cwd=REPO_ROOT,
                            check=True, timeout=300)
    return result.stdout.split()


@pytest.mark.skipif(not _has_glibc_mallinfo2(), reason='glibc >= 2.33 only: the setting and the probe are glibc')
def test_freed_memory_stays_in_the_heap_instead_of_going_back_to_the_system():
    kept, mapped, heap_used, heap_change_on_free = probe('default')
    # By default the block is mmap-ed, so freeing it unmaps it and the next one is faulted in page by page.
    assert kept == 'None' and int(mapped) >= 64 * MIB and int(heap_used) < MIB
    kept, mapped, heap_used, heap_change_on_free = probe('keep')
    # Kept: served from the heap, and the heap does not shrink when it is freed.
    assert kept == 'True' and int(mapped) == 0 and int(heap_used) >= 64 * MIB
    assert int(heap_change_on_free) == 0
