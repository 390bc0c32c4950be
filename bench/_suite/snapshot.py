"""A copy of the framework's source taken when the suite starts, so that it measures one version."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from _machine import src_hash
from _paths import ROOT

if TYPE_CHECKING:
    from pathlib import Path


def snapshot_src(work_dir: Path) -> tuple[Path, str]:
    """Copy ``src/indexer`` into the work dir; every framework run of the suite imports the copy.

    So the whole suite measures one version of the code even while ``src/`` is being
    edited.  Returns the directory to put on ``PYTHONPATH`` and the copy's hash.
    """
    tmp = work_dir / "src-snapshots" / f"tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(
        ROOT / "src" / "indexer", tmp / "indexer", ignore=shutil.ignore_patterns("__pycache__")
    )
    code = src_hash(tmp)
    dest = tmp.with_name(code)
    if dest.exists():
        shutil.rmtree(tmp)
    else:
        tmp.rename(dest)
    return dest, code
