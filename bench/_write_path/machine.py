"""What a write-path result was measured on: the machine, the server, the libraries."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import psycopg
import trio
import trio_asyncio  # type: ignore[import-untyped, unused-ignore]
from _machine import mem_total_kib


def machine_info(url: str) -> dict[str, Any]:
    """The CPUs this process may use, RAM, the server's version, Python and the libraries."""
    mem_kb = mem_total_kib() or 0
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version()").fetchone()
    return {
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "mem_total_gib": round(mem_kb / 2**20, 1),
        "server_version": row[0] if row else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "psycopg": psycopg.__version__,
        "libpq": psycopg.pq.version(),
        "psycopg_impl": psycopg.pq.__impl__,
        "trio": trio.__version__,
        "trio_asyncio": str(trio_asyncio.__version__),
        "gil_switch_interval": sys.getswitchinterval(),
    }
