"""Freed tensor memory kept for the next step instead of handed back to the kernel (glibc malloc).

glibc's ``malloc`` serves each request above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and returns it with ``munmap`` when freed. A meta-RL step allocates many tensors at
least that large (one hidden activation of an Ant meta-batch: 160,000 steps x 100 units x 4
bytes = 64 MB) and frees them within the step, so every one is new memory the kernel must fault
in and zero page by page. Measured on a core shared with a training run (docs/RESULTS.md, "Freed
memory kept for reuse"): 34-46 M page faults and a third of the CPU time in the kernel over three
Ant and three HalfCheetahDir MAML-TRPO iterations (one warm-up, two timed); one Ant iteration took 97 s with glibc's
defaults and 62 s with freed memory kept.

:func:`keep_freed_memory` makes glibc take every block from its heap (``M_MMAP_MAX`` 0) and keep
freed memory at the heap's top (``M_TRIM_THRESHOLD`` 2 GiB - 1), so the next step reuses pages
that are already mapped. The cost is resident memory: the heap keeps its peak for the rest
of the process, and grows for a few steps before torch's 64-byte-aligned requests fit the blocks
freed before them (that benchmark's peak: 1.4-1.7 GB with glibc's defaults, 3.0 GB kept). Where
the heap cannot grow, glibc still falls back to ``mmap``.

It changes nothing where the C library is not glibc, nor where the user set how malloc maps
and trims memory (``MALLOC_MMAP_MAX_``, ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_TOP_PAD_`` or their ``GLIBC_TUNABLES`` names): setting
``MALLOC_MMAP_MAX_=65536``, glibc's default, keeps glibc's behaviour. The ``metarl`` command calls
it at start; a script that imports metarl calls it itself.
"""

from __future__ import annotations

import ctypes
import os

#: ``mallopt`` parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: keep up to 2 GiB free at the heap's top

#: the environment's names for the settings this module makes (variables, then tunables)
USER_VARIABLES = (
    "MALLOC_MMAP_MAX_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
)
USER_TUNABLES = (
    "glibc.malloc.mmap_max",
    "glibc.malloc.mmap_threshold",
    "glibc.malloc.trim_threshold",
    "glibc.malloc.top_pad",
)


def is_glibc() -> bool:
    """Whether this process runs on glibc (whose ``mallopt`` this module calls)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr, or a name it does not know
        return False


def user_tuned_malloc() -> bool:
    """Whether the environment sets how glibc's malloc maps and trims memory."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(name in os.environ for name in USER_VARIABLES) or any(
        name in tunables for name in USER_TUNABLES
    )


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to serve large blocks from its heap and keep freed memory for reuse.

    Returns whether the setting was applied: False where the C library is not glibc or the
    user tuned malloc (see the module's docstring)."""
    if not is_glibc() or user_tuned_malloc():
        return False
    mallopt = ctypes.CDLL(None).mallopt  # this process's own C library
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
