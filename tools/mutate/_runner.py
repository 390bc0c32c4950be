"""Running pytest against a mutated copy of src/, and what to make of its output.

Every run (the baseline too) gets a fresh copy of src/ in a temporary
directory, put first on PYTHONPATH: it wins over the editable install,
and the subprocesses the tests start (the CLI, the reader child started
with ``spawn``) inherit it.  The working tree's src/ is never written.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ._database import drop_schemas
from ._probe import MODULE_VARIABLE, SRC_VARIABLE
from .mutants import CLASSES, Mutant

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "indexer"

# pytest's short summary: "FAILED tests/x.py::test - reason", "ERROR tests/x.py - ..."
_FAILURE = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)

# pytest processes running now (each in a process group of its own), for kill_all.
_live: set[subprocess.Popen[str]] = set()
_live_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Outcome:
    """One pytest run of one mutant."""

    status: str  # caught | survived | timeout | no-tests | error
    caught_by: str | None
    seconds: float
    detail: str = ""


def problems(mutant: Mutant) -> list[str]:
    """Why ``mutant`` cannot run as listed (empty when it can)."""
    out = []
    path = PACKAGE / mutant.file
    if mutant.cls not in CLASSES:
        out.append(f"unknown class {mutant.cls!r} (one of {', '.join(CLASSES)})")
    if not mutant.tests:
        out.append("names no tests")
    if mutant.old == mutant.new:
        out.append("replacement equals the original text")
    if not path.is_file():
        out.append(f"no file src/indexer/{mutant.file}")
        return out
    count = path.read_text().count(mutant.old)
    if count != 1:
        what = (
            "not found (the code changed: update the mutant)"
            if not count
            else (f"found {count} times (add context to make it unique)")
        )
        out.append(f"original text {what} in src/indexer/{mutant.file}: {mutant.old!r}")
    return out


def module_of(mutant: Mutant | None) -> str:
    if mutant is None:
        return "indexer"
    return "indexer." + mutant.file.removesuffix(".py").replace("/", ".")


@contextlib.contextmanager
def source_copy(mutant: Mutant | None) -> Iterator[Path]:
    """A temporary directory holding ``src/``, with ``mutant`` applied (None: pristine)."""
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        root = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
        shutil.copytree(REPO / "src", root / "src", ignore=ignore)
        if mutant is not None:
            path = root / "src" / "indexer" / mutant.file
            text = path.read_text()
            assert text.count(mutant.old) == 1, mutant.id
            path.write_text(text.replace(mutant.old, mutant.new, 1))
        yield root


def environment(root: Path, url: str, mutant: Mutant | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(root / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env["INDEXER_TEST_DATABASE_URL"] = url
    # A fresh example database per run: a failure found by one run must not
    # be replayed by the next (that would hide a flaky catch).
    env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(root / "hypothesis")
    env[SRC_VARIABLE] = str(root / "src")
    env[MODULE_VARIABLE] = module_of(mutant)
    return env


def run_pytest(
    args: Iterable[str], env: dict[str, str], timeout: float | None
) -> tuple[int | None, str, float]:
    """Run pytest in its own process group; (exit status or None on timeout, output, seconds).

    Each run gets its own ``--basetemp`` beside its copy of ``src/``: pytest
    resets the shared ``pytest-of-<user>`` directory to mode 0700 when a
    session starts, which cut off the embedded PostgreSQL of a test running
    in the other job (it runs as another user, through that directory).
    """
    basetemp = Path(env[SRC_VARIABLE]).parent / "pytest-tmp"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={basetemp}"]
    command += ["-p", "tools.mutate._probe", *args]
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    with _live_lock:
        _live.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        # The whole group: the CLI processes and reader children the tests started.
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        code = None
        drop_schemas(env["INDEXER_TEST_DATABASE_URL"], proc.pid)
    except BaseException:  # interrupted: the group is in a session of its own, so kill it
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    finally:
        with _live_lock:
            _live.discard(proc)
    return code, out, time.monotonic() - started


def kill_all() -> None:
    """Kill every pytest process group still running (the command was interrupted)."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def run_mutant(mutant: Mutant, nodes: list[str], url: str, timeout: float) -> Outcome:
    """Apply ``mutant`` to a fresh copy and run ``nodes`` against it, stopping at the first failure."""
    if not nodes:
        return Outcome("no-tests", None, 0.0, "none of its tests exist yet")
    with source_copy(mutant) as root:
        code, out, seconds = run_pytest(
            ["-x", "-q", *nodes], environment(root, url, mutant), timeout
        )
    failed = _FAILURE.search(out)
    if code is None:
        return Outcome("timeout", None, seconds, _tail(out))
    if code == 0:
        return Outcome("survived", None, seconds, _tail(out, 1))
    if code == 1 or (code == 2 and failed):  # 2: a collection error, e.g. an import failing
        return Outcome("caught", failed.group(1) if failed else "?", seconds)
    return Outcome("error", None, seconds, f"pytest exit status {code}:\n{_tail(out)}")


def collect(nodes: list[str], url: str) -> tuple[set[str], str | None]:
    """The named nodes that exist on the unmutated tree, or an error message."""
    files = sorted({n.split("::")[0] for n in nodes if (REPO / n.split("::")[0]).is_file()})
    if not files:
        return set(), None
    with source_copy(None) as root:
        code, out, _ = run_pytest(
            ["--collect-only", "-q", *files], environment(root, url, None), 600
        )
    if code != 0:
        return set(), f"collecting {' '.join(files)} failed (exit status {code}):\n{_tail(out)}"
    collected = [line.strip() for line in out.splitlines() if "::" in line]
    return {
        n for n in nodes if any(c == n or c.startswith((n + "::", n + "[")) for c in collected)
    }, None


def union(nodes: Iterable[str]) -> list[str]:
    """Nodes in first-seen order, without those whose whole file is listed too."""
    ordered = list(dict.fromkeys(nodes))
    files = {n for n in ordered if "::" not in n}
    return [n for n in ordered if "::" not in n or n.split("::")[0] not in files]


def baseline(nodes: list[str], url: str, jobs: int = 1) -> tuple[bool, str, float]:
    """Run ``nodes`` on pristine copies, in ``jobs`` pytest processes: (all passed, tail, seconds).

    The nodes are dealt round-robin to the processes, as the mutants run
    ``jobs`` at a time against the same database.
    """
    if not nodes:  # pytest without arguments would run the whole suite
        return True, "", 0.0
    groups = [nodes[i::jobs] for i in range(max(1, min(jobs, len(nodes))))]
    results: list[tuple[bool, str]] = []
    started = time.monotonic()

    def one(group: list[str]) -> None:
        with source_copy(None) as root:
            code, out, _ = run_pytest(["-q", *group], environment(root, url, None), 3600)
        results.append((code == 0, _tail(out, 40)))

    threads = [threading.Thread(target=one, args=(group,)) for group in groups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failing = [tail for ok, tail in results if not ok]
    if len(results) < len(groups):
        failing.append("a baseline process did not finish")
    return not failing, "\n".join(failing), time.monotonic() - started


_SELF_CHECK = """\
import multiprocessing, subprocess, sys
import indexer

def where(queue):
    import indexer
    queue.put(indexer.__file__)

if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=where, args=(queue,))
    child.start()
    spawned = queue.get(timeout=120)
    child.join()
    cli = subprocess.run([sys.executable, "-c", "import indexer; print(indexer.__file__)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    print(indexer.__file__, spawned, cli, sep="\\n")
"""


def self_check(url: str) -> str | None:
    """None if this process's children, a spawn child and a subprocess all import the copy."""
    with source_copy(None) as root:
        script = root / "where.py"
        script.write_text(_SELF_CHECK)
        env = environment(root, url, None)
        done = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
        )
        src = (root / "src").resolve()
        paths = done.stdout.split()
        if done.returncode != 0 or len(paths) != 3:
            return f"the import check failed:\n{done.stdout}{done.stderr}"
        wrong = [p for p in paths if not Path(p).resolve().is_relative_to(src)]
        if wrong:
            return f"indexer was imported from {wrong} instead of the copy in {src}"
    return None


def _tail(out: str, lines: int = 15) -> str:
    return "\n".join(out.rstrip().splitlines()[-lines:])
