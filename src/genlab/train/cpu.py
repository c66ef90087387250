"""How a training process uses the CPU: glibc's allocator and the number of threads.

Two process-wide settings that the Trainer applies on CPU (see ``benchmarks/README.md``,
"Trainer overhead" and "A shared machine", for the measurements behind them):

* :func:`tune_malloc` -- glibc hands every block above 128 KiB back to the kernel when
  it is freed (``mmap``/``munmap``), and a training step frees and re-allocates its
  activations every iteration; the kernel zeroes those pages again each time. Raising
  ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` with ``mallopt`` keeps freed buffers in
  the process for reuse: what ``MALLOC_MMAP_THRESHOLD_=...`` in the environment does, but
  from inside the process, and only while ``fit`` runs (:func:`restore_malloc` after it).
  ``train.tune_malloc = false`` leaves the allocator alone.
* :func:`choose_threads` -- torch starts one thread per core. Beside other busy
  processes a 2-thread step waits at every parallel region for the thread that lost
  its core, and runs slower than one thread would. ``train.threads = 0`` (the default)
  takes ``min(torch's threads, the cores left free by the other runnable tasks)`` at
  start-up; ``train.threads = N`` uses exactly N.

The OpenMP wait policy (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``) is read once, when
libgomp starts, i.e. when torch is imported: a library cannot change it for the
process that imports it. :func:`openmp_defaults` gives the values the ``genlab``
command sets before it imports torch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import time
from pathlib import Path

#: ``mallopt`` parameters of glibc's malloc.h
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: The largest value ``mallopt`` takes (its argument is a C int): 2 GiB - 1 byte.
MALLOPT_MAX = 2**31 - 1
#: The upper limit mallopt(3) documents for the mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX):
#: the fallback where a glibc refuses MALLOPT_MAX (glibc 2.36 accepts and applies MALLOPT_MAX)
MMAP_THRESHOLD_CAP = 32 * 2**20
#: glibc's initial (static) M_MMAP_THRESHOLD and M_TRIM_THRESHOLD, restored by restore_malloc
DEFAULT_THRESHOLD = 128 * 2**10

_malloc_tuned: int | None = None  # the mmap threshold set by tune_malloc, None when not (yet) applied


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return libc


def tune_malloc() -> int | None:
    """Keep freed buffers in this process instead of returning them to the kernel (glibc only).

    Sets ``M_MMAP_THRESHOLD`` (blocks above it are ``mmap``-ed and given back on free;
    default 128 KiB, growing dynamically up to 32 MiB) to 2 GiB - 1, or where glibc refuses
    that (``mallopt`` returns 0; its manual documents 32 MiB as the limit on 64-bit) to 32 MiB,
    and ``M_TRIM_THRESHOLD`` (free memory at the top of the heap kept before trimming) to
    2 GiB - 1. Returns the mmap threshold in bytes now in force, or None where nothing
    was set (not Linux, not glibc, or glibc refused both). Process-wide and idempotent;
    the memory a process keeps grows to its peak working set.
    """
    global _malloc_tuned
    if _malloc_tuned is not None:
        return _malloc_tuned
    libc = _libc()
    if libc is None:
        return None
    for threshold in (MALLOPT_MAX, MMAP_THRESHOLD_CAP):
        if libc.mallopt(M_MMAP_THRESHOLD, threshold) == 1:  # mallopt returns 1 on success, 0 on error
            libc.mallopt(M_TRIM_THRESHOLD, MALLOPT_MAX)
            _malloc_tuned = threshold
            return threshold
    return None


def restore_malloc() -> None:
    """Undo :func:`tune_malloc`: glibc's static defaults again (128 KiB for both thresholds;
    the dynamic threshold stays off once set) and the free memory at the top of the heap
    handed back (``malloc_trim``). The Trainer calls it when ``fit`` ends: outside a training
    loop, a process that keeps large freed blocks on the heap can grow without bound (an
    IWAE evaluation that alternates 31 MB batches with small kept tensors reached 12.7 GB
    and was killed; 0.5 GB with the defaults). A no-op when nothing is tuned."""
    global _malloc_tuned
    libc = _libc()
    if _malloc_tuned is None or libc is None:
        return
    libc.mallopt(M_MMAP_THRESHOLD, DEFAULT_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_THRESHOLD)
    libc.malloc_trim(ctypes.c_size_t(0))
    _malloc_tuned = None


def malloc_tuned() -> int | None:
    """The mmap threshold :func:`tune_malloc` set in this process (bytes), or None."""
    return _malloc_tuned


# --------------------------------------------------------------------------- threads


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _running_tasks() -> tuple[int, int] | None:
    """(runnable tasks on the machine, runnable threads of this process) now, from /proc; None without it."""
    try:
        total = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        own = 0
        for task in Path("/proc/self/task").iterdir():
            stat = (task / "stat").read_text()
            own += stat[stat.rindex(")") + 2] == "R"
        return total, own
    except (OSError, ValueError, IndexError):
        return None


def other_load(samples: int = 20, interval: float = 0.01) -> float:
    """How many CPUs other processes keep busy now: the mean number of runnable tasks
    not of this process over ``samples`` readings ``interval`` seconds apart (Linux:
    ``/proc/loadavg`` minus this process's running threads). Where /proc is absent, the
    1-minute load average (which lags a change by about a minute); 0.0 where neither exists.
    """
    seen = []
    for i in range(samples):
        now = _running_tasks()
        if now is None:
            break
        seen.append(max(0, now[0] - now[1]))
        if i + 1 < samples:
            time.sleep(interval)
    if seen:
        return sum(seen) / len(seen)
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def choose_threads(cores: int, load: float, current: int) -> int:
    """Threads for a training process on ``cores`` CPUs while other processes keep
    ``load`` CPUs busy, given ``current`` threads (torch's setting; never exceeded).

    One thread per free core, a partly busy core counting as free below half its load
    (``round(cores - load)``, halves up), at least 1: beside one busy process on 2 cores,
    1 thread; on an idle machine, ``min(cores, current)``.
    """
    free = int(cores - load + 0.5)
    return max(1, min(current, cores, free))


def training_threads(setting: int, current: int) -> int:
    """The thread count of ``train.threads = setting``: N > 0 as it is; 0 chosen from the
    machine now (:func:`choose_threads` of :func:`usable_cores` and :func:`other_load`).

    The load is the whole machine's; a process allowed on only some of its CPUs (a
    cpuset, ``taskset``) counts the same fraction of it, as if spread evenly.
    """
    if setting > 0:
        return setting
    if current <= 1:
        return 1
    cores = usable_cores()
    return choose_threads(cores, other_load() * cores / max(cores, os.cpu_count() or cores), current)


# --------------------------------------------------------------------------- OpenMP


def openmp_defaults(environ: dict) -> dict:
    """The OpenMP settings the ``genlab`` command puts in its environment before torch
    starts, leaving any the user set: ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads
    sleep instead of spinning on a core another process could use). Returns what it set."""
    wanted = {"OMP_WAIT_POLICY": "PASSIVE"}
    added = {k: v for k, v in wanted.items() if k not in environ}
    environ.update(added)
    return added


# --------------------------------------------------------------------------- the Trainer's use


def loop_threads(config, device) -> int:
    """The thread count the Trainer trains with: :func:`training_threads` of ``train.threads``
    on CPU, torch's own setting on other devices. (The allocator, ``train.tune_malloc``, is
    tuned only while ``fit`` runs: :func:`tune_malloc`, then :func:`restore_malloc`; the memory
    layout is the model's own setting, ``model.channels_last`` where a model has it.)"""
    import torch

    current = torch.get_num_threads()
    return training_threads(config.threads, current) if device.type == "cpu" else current
