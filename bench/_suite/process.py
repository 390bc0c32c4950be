"""Child processes timed from the outside: wall and CPU time, RSS of the process tree.

``os.wait4`` gives the wall and CPU time; a thread samples ``/proc`` every
``SAMPLE_INTERVAL`` seconds for the VmRSS summed over the process tree and each
process's VmHWM.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from _paths import ROOT

if TYPE_CHECKING:
    from pathlib import Path

SAMPLE_INTERVAL = 0.1


@dataclass
class Proc:
    """One finished child process, as the OS saw it."""

    cmd: list[str]
    returncode: int
    wall_seconds: float
    maxrss_kib: int
    cpu_seconds: float
    stdout: str
    stderr: str
    killed_after: float | None = None
    # (seconds since start, VmRSS summed over the process tree in KiB, processes)
    rss_samples: list[tuple[float, int, int]] = field(default_factory=list)
    # Largest VmHWM (a process's own peak RSS) seen in the tree, KiB.
    hwm_kib: int = 0

    @property
    def peak_tree_kib(self) -> int | None:
        return max((kib for _, kib, _ in self.rss_samples), default=None)


_VMRSS = re.compile(rb"VmRSS:\s+(\d+)\s+kB")
_VMHWM = re.compile(rb"VmHWM:\s+(\d+)\s+kB")


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (children of every thread, recursively)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{p}/task/{tid}/children", "rb") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
    return out


def tree_rss_kib(pid: int) -> tuple[int, int, int] | None:
    """(sum of VmRSS over ``pid``'s tree in KiB, processes counted, largest VmHWM in KiB).

    None once ``pid`` is gone.  VmHWM is each process's own peak so far, so
    sampling it misses no spike of a process still alive at the next sample.
    """
    total = count = hwm = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status", "rb") as f:
                text = f.read()
        except OSError:
            if p == pid:
                return None
            continue
        m = _VMRSS.search(text)
        if m:  # zombies have no VmRSS
            total += int(m.group(1))
            count += 1
        h = _VMHWM.search(text)
        if h:
            hwm = max(hwm, int(h.group(1)))
    return total, count, hwm


def _sample_rss(
    pid: int, t0: float, stop: threading.Event, out: list[tuple[float, int, int]], hwm: list[int]
) -> None:
    while not stop.is_set():
        got = tree_rss_kib(pid)
        if got is None:
            return
        if got[1]:
            out.append((round(time.perf_counter() - t0, 3), got[0], got[1]))
            hwm[0] = max(hwm[0], got[2])
        stop.wait(SAMPLE_INTERVAL)


def memory_fields(proc: Proc) -> dict[str, Any]:
    """Peak RSS: summed over the process tree (sampled), and the largest single process (VmHWM)."""
    tree = proc.peak_tree_kib
    return {
        # The framework reads files in a child process: the footprint is the tree's sum.
        "maxrss_mib": (tree if tree is not None else proc.maxrss_kib) / 1024,
        "maxrss_tree_sampled_mib": tree / 1024 if tree is not None else None,
        "maxrss_largest_process_mib": proc.hwm_kib / 1024 if proc.hwm_kib else None,
        # wait4's ru_maxrss, kept for reference only: Linux folds in the RSS the
        # process had before exec, i.e. this suite's own at fork time.
        "maxrss_wait4_mib": proc.maxrss_kib / 1024,
        "max_processes": max((n for _, _, n in proc.rss_samples), default=None),
    }


def run_process(
    cmd: list[str],
    env: dict[str, str],
    log_base: Path,
    *,
    kill_after: float | None = None,
    timeout: float = 7200.0,
) -> Proc:
    """Run ``cmd`` to its end (or SIGKILL it after ``kill_after`` s); time it and sample its RSS."""
    log_base.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_base.with_suffix(".out"), log_base.with_suffix(".err")
    samples: list[tuple[float, int, int]] = []
    hwm = [0]
    stop = threading.Event()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        sampler = threading.Thread(
            target=_sample_rss, args=(proc.pid, t0, stop, samples, hwm), daemon=True
        )
        sampler.start()
        killed_at: float | None = None
        deadline = t0 + (kill_after if kill_after is not None else timeout)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            now = time.perf_counter()
            if killed_at is None and now >= deadline:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = now - t0
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Proc(
        cmd=cmd,
        returncode=proc.returncode,
        wall_seconds=wall,
        maxrss_kib=usage.ru_maxrss,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        killed_after=killed_at,
        rss_samples=samples,
        hwm_kib=hwm[0],
    )
