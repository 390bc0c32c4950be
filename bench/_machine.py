"""What a benchmark result was measured on: the machine, the server, the code."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from _paths import ROOT
from psycopg import sql

__all__ = ["machine_info", "mem_total_kib", "src_hash"]


def src_hash(base: Path = ROOT / "src") -> str:
    """A hash of the framework's source under ``base``, to tell which code a run measured."""
    h = hashlib.sha256()
    for path in sorted((base / "indexer").rglob("*.py")):
        h.update(str(path.relative_to(base)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def mem_total_kib() -> int | None:
    """The machine's RAM (``MemTotal`` in /proc/meminfo), KiB; None where it cannot be read."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return None


def machine_info(url: str | None) -> dict[str, Any]:
    """The machine, Python, git state and (with ``url``) the PostgreSQL server."""
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    if (kib := mem_total_kib()) is not None:
        info["ram_gib"] = kib / 1024 / 1024
    if url is not None:
        _postgres_info(url, info)
    info["git_commit"] = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--", "src")
    info["git_dirty_src"] = bool(dirty)
    info["git_status_src"] = dirty.splitlines()
    with contextlib.suppress(OSError):
        info["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
    return info


def _postgres_info(url: str, info: dict[str, Any]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT version()").fetchone()
        info["postgres_version"] = row[0] if row else None
        info["postgres"] = (row[0] or "").split(" on ")[0] if row else None
        settings = {}
        for name in ("shared_buffers", "work_mem", "max_wal_size", "synchronous_commit", "fsync"):
            r = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            settings[name] = r[0] if r else None
        info["postgres_settings"] = settings
