"""Shared plumbing for the benchmarks: machine description, repeated timing, JSON results.

Every result file says where and how it was measured (CPU, cores, torch threads,
GPU, load average at start and end, the exact command, the date), because the
machines these run on are shared: a number without its load is not comparable.
Timings are repeated and reported as median and min; nothing here asserts a time.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(device: torch.device | None = None) -> dict:
    """What the numbers were measured on (the load average is added by ``Run``)."""
    info = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "native_thread_pools": blas_threads(),
        "gpu": None,
    }
    if torch.cuda.is_available():
        index = device.index if device is not None and device.type == "cuda" and device.index is not None else 0
        props = torch.cuda.get_device_properties(index)
        info["gpu"] = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                       "cuda": torch.version.cuda}
    return info


def set_threads(threads: int | None) -> None:
    """Limit torch (OpenMP) and numpy/scipy (OpenBLAS) to ``threads``, here and in subprocesses.

    On a machine shared with other jobs, 2-thread OpenMP/OpenBLAS ops on 2 cores wait
    for descheduled peers and were measured 4-15x slower than single-threaded ones;
    ``--threads 1`` gives numbers that mean something there. torch.set_num_threads
    alone does not reach numpy's OpenBLAS; threadpoolctl does.
    """
    if not threads:
        return
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def blas_threads() -> list:
    from threadpoolctl import threadpool_info

    return [f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info()]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats: int, warmup: int = 1, device: torch.device | None = None) -> dict:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; wall seconds as median, min, all.

    ``cpu_s`` is the median CPU time of this process and its reaped children (DataLoader
    workers) per run: on a loaded machine wall time grows, CPU time much less.
    The last call's return value comes back under ``"value"`` (not written to JSON).
    """
    device = device or torch.device("cpu")
    value = None
    for _ in range(warmup):
        value = fn()
    sync(device)
    seconds, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        value = fn()
        sync(device)
        seconds.append(time.perf_counter() - start)
        cpu.append(cpu_seconds() - start_cpu)
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "runs_s": seconds,
            "cpu_s": statistics.median(cpu), "value": value}


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (user + system)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def rate(count: float, timing: dict) -> dict:
    """Throughput: per wall second at the median and best run, and per CPU second (median)."""
    return {"median": round(count / timing["median_s"], 2), "best": round(count / timing["min_s"], 2),
            "per_cpu_s": round(count / timing["cpu_s"], 2) if timing.get("cpu_s") else None}


def public(timing: dict) -> dict:
    """A timing without its return value, rounded for the JSON file."""
    return {k: (round(v, 4) if isinstance(v, float) else [round(x, 4) for x in v])
            for k, v in timing.items() if k != "value"}


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: peaks may then be underestimated
        pass


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def peak_memory(device: torch.device):
    """Peak memory above the starting level while the block runs, in MiB: ``box["peak_mib"]``.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: resident set size sampled every
    2 ms in a thread, after handing freed heap memory back to the OS (malloc_trim),
    so that earlier measurements do not hide this one's allocations (tracemalloc
    does not see torch's allocator, and ru_maxrss only ever grows).
    """
    box: dict = {}
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        yield box
        sync(device)
        box["peak_mib"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        box["how"] = "torch.cuda.max_memory_allocated above the starting allocation"
        return
    gc.collect()
    _malloc_trim()
    base, peak, done = _rss_bytes(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield box
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], _rss_bytes())
        box["peak_mib"] = max(0, peak[0] - base) / 2**20
        box["how"] = "process RSS sampled every 2 ms, peak above the RSS at start"


def code_state() -> dict:
    """The commit, synthgate/'s tree in it and local changes there (others may edit it while a benchmark runs)."""
    def git(*args):
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    return {"commit": git("rev-parse", "--short", "HEAD"), "synthgate_tree": git("rev-parse", "--short", "HEAD:synthgate"),
            "synthgate_changes": (git("status", "--porcelain", "--", "synthgate") or "").splitlines()}


class Run:
    """One benchmark run: records the machine and load at start, writes the JSON at the end."""

    def __init__(self, name: str, device: torch.device | None = None):
        self.name, self.device = name, device
        self.started = datetime.now(UTC)
        self.machine = machine(device)
        self.load_start = os.getloadavg()
        self.code = code_state()

    def save(self, filename: str | None, parameters: dict, results: dict, notes: list[str] | None = None) -> Path:
        """Write the record to ``bench/results/<filename>`` (default ``<name>-<cpu|cuda>.json``)."""
        filename = filename or f"{self.name}-{default_suffix(self.device)}.json"
        record = {
            "benchmark": self.name,
            "date": self.started.isoformat(timespec="seconds"),
            "command": shlex.join([".venv/bin/python", os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]]),
            "duration_s": round((datetime.now(UTC) - self.started).total_seconds(), 1),
            "machine": {**self.machine, "loadavg_start": self.load_start, "loadavg_end": os.getloadavg()},
            "code": {"start": self.code, "end": code_state()},
            "parameters": parameters,
            "results": results,
            "notes": notes or [],
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / filename
        path.write_text(json.dumps(record, indent=2, default=str) + "\n")  # str: paths among the parameters
        print(f"wrote {path.relative_to(REPO)}")
        return path


def default_suffix(device: torch.device | None) -> str:
    return "cuda" if device is not None and device.type == "cuda" else "cpu"


def add_run_options(parser, name: str, device: str = "cpu") -> None:
    """The options every device benchmark takes: --device, --threads and --out."""
    parser.add_argument("--device", default=device)
    parser.add_argument("--threads", type=int,
                        help="torch and BLAS threads (default: the libraries' choice; 1 on a shared machine)")
    parser.add_argument("--out", help=f"result file name in bench/results/ (default {name}-<device>.json)")


def start_run(args, name: str) -> tuple[torch.device, Run]:
    """Apply --threads, then open the run on --device (the machine is recorded as it is then)."""
    set_threads(args.threads)
    device = torch.device(args.device)
    return device, Run(name, device)


def log(*parts) -> None:
    print(*parts, flush=True, file=sys.stderr)
