"""Time and memory of one call, the same way on a CPU and a GPU (BAHE's cost tables, the benchmarks).

    seconds, peak_mb = measure(lambda: model.loss(batch).backward(), device)

Peak memory is the highest total of tensor memory allocated during the call above what was allocated before
it (activations, gradients, temporaries; the weights already held do not count): on CUDA from the caching
allocator's statistics, on a CPU from torch's profiler (each op's net allocation and every free, in time
order; an op that allocates and frees inside itself counts with its net, so a CPU peak can read a little low).
"""
from __future__ import annotations

import contextlib
import os
import sys
import time

import torch


@contextlib.contextmanager
def native_stderr_silenced():
    """Send what native code writes to file descriptor 2 to /dev/null for the block: torch's CPU profiler
    logs a start and stop line per session there (and a warning), which would flood a notebook. Python's own
    ``sys.stderr`` (warnings, tracebacks raised after the block) is untouched."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (an embedded interpreter): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_memory_mb(fn, device="cpu") -> float:
    """MB of tensor memory ``fn()`` needs at its peak, above what was allocated when it started."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
    from torch.profiler import ProfilerActivity, profile

    with native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # each op's own net allocation at its start ("self": its children count for themselves), and the frees
    # that happen between ops ("[memory]" events)
    changes = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage)
    live = peak = 0
    for _, delta in changes:
        live += delta
        peak = max(peak, live)
    return peak / 2 ** 20


def measure_times(fn, device="cpu", reps: int = 3, warmup: int = 1, min_seconds: float = 0.0) -> list[float]:
    """Seconds of each timed call of ``fn``, sorted: ``warmup`` untimed calls, then at least ``reps`` timed ones,
    more until they add up to ``min_seconds`` (a fast step gets many repetitions, a slow one a few)."""
    device = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    while len(times) < reps or sum(times) < min_seconds:
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return sorted(times)


def measure(fn, device="cpu", reps: int = 3, warmup: int = 1) -> tuple[float, float]:
    """(median seconds per call over ``reps`` calls after ``warmup``, peak MB of one call)."""
    times = measure_times(fn, device, reps, warmup)
    return times[len(times) // 2], peak_memory_mb(fn, device)


class RunMeter:
    """Wall and CPU time of a run, and how much CPU everything else on the machine used meanwhile.

        meter = RunMeter(pids=[kernel_pid])    # default: this process
        ... the run ...
        stats = meter.stop()   # {"wall_seconds", "cpu_seconds", "threads", "other_cpu_cores", "load_average", "contended"}

    ``other_cpu_cores`` is the machine's busy CPU time minus the run's own, divided by the wall time: the cores
    other jobs held on average. Two torch jobs on 2 cores slow each other 10-40x, so a run is ``contended`` when
    others held more than ``CONTENDED_CORES`` of a core, or when its wall time is over ``SLOW_FACTOR`` x its CPU
    time divided by its threads while others were busy at all; a contended time is never quoted as a cost.
    """

    CONTENDED_CORES = 0.25
    SLOW_FACTOR = 3.0

    def __init__(self, pids: list[int] | None = None, threads: int | None = None):
        import psutil

        self._psutil = psutil
        self.pids = list(pids) if pids else [os.getpid()]
        self.threads = threads or torch.get_num_threads()
        self._own0 = self._own()
        self._busy0 = self._busy()
        self._t0 = time.perf_counter()

    def _own(self) -> float:
        total = 0.0
        for pid in self.pids:
            try:
                c = self._psutil.Process(pid).cpu_times()
            except self._psutil.Error:  # the process ended: its last reading stays in _last
                total += self._last.get(pid, 0.0) if hasattr(self, "_last") else 0.0
                continue
            self._last = getattr(self, "_last", {}) | {pid: c.user + c.system + c.children_user + c.children_system}
            total += self._last[pid]
        return total

    def _busy(self) -> float:
        c = self._psutil.cpu_times()
        return sum(c) - c.idle - getattr(c, "iowait", 0.0) - getattr(c, "guest", 0.0) - getattr(c, "guest_nice", 0.0)

    def stop(self) -> dict:
        wall = time.perf_counter() - self._t0
        own = self._own() - self._own0
        others = max(self._busy() - self._busy0 - own, 0.0) / max(wall, 1e-9)
        slow = wall > self.SLOW_FACTOR * own / max(self.threads, 1) and others > 0.05
        return {"wall_seconds": round(wall, 2), "cpu_seconds": round(own, 2), "threads": self.threads,
                "other_cpu_cores": round(others, 3), "load_average": round(os.getloadavg()[0], 2),
                "contended": bool(others > self.CONTENDED_CORES or slow)}
