"""The sources' child processes never run the parent's main script again.

Spawn runs the parent's ``__main__`` again in each child unless told not to.
A script that calls ``run_project`` at module level, as docs/reference.md's
"Running from Python" does, then started a second run inside the file
reader (or the JSON-RPC log worker), which failed on the run lock and took
the first run down with it.  These tests run such scripts, without an
``if __name__ == "__main__":``, through both children.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import trio

from indexer.sources._spawn import start_child
from indexer.testing import ScriptedChain, open_rpc_server

from ._chains import expected, make_rpc_project, random_logs, tables
from ._projects import expected_balances, make_project, table_rows

if TYPE_CHECKING:
    from pathlib import Path

# Exactly the shape of the reference's example: no main guard.
_SCRIPT = """
import logging, sys
from pathlib import Path
import trio
from indexer import RunOptions, load_config, load_handlers, run_project

logging.basicConfig(level=logging.WARNING)
logging.getLogger("indexer.sources.rpc").setLevel(logging.DEBUG)
print("script ran", file=sys.stderr)
config = load_config(Path(sys.argv[1]))
handlers = load_handlers(config)
options = RunOptions(reset=True, rpc_tuning={{"log_worker_min_logs": 1, "initial_span": 10, "max_span": 10}})
summary = trio.run(run_project, config, handlers, options)
print("events", summary.events)
"""


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "index_it.py"
    path.write_text(_SCRIPT.format())
    return path


def test_a_script_without_a_main_guard_runs_a_file_project(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema)
    done = subprocess.run(
        [sys.executable, str(_script(tmp_path)), str(project)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "INDEXER_DATABASE_URL": database_url},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("script ran") == 1  # the reader child did not run it again
    assert "events 7430" in done.stdout
    assert table_rows(database_url, schema) == expected_balances()


def test_a_script_run_as_a_module_runs_a_file_project(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    # `python -m pkg.index_it`: __main__ has a spec naming the module, which
    # spawn would import again in the child.
    project = make_project(tmp_path, schema)
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "index_it.py").write_text(_SCRIPT.format())
    done = subprocess.run(
        [sys.executable, "-m", "pkg.index_it", str(project)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "INDEXER_DATABASE_URL": database_url},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("script ran") == 1
    assert "events 7430" in done.stdout
    assert table_rows(database_url, schema) == expected_balances()


async def test_a_script_without_a_main_guard_runs_through_the_log_worker(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    rng = random.Random(11)
    chain = ScriptedChain(1, head=120, logs=random_logs(rng, range(1, 121), per_block=4))
    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=120, max_reorg_depth=8)
        env = {**os.environ, "INDEXER_DATABASE_URL": database_url}
        env.pop("INDEXER_TEST_DATABASE_URL", None)
        with trio.fail_after(120):
            done = await trio.run_process(
                [sys.executable, str(_script(tmp_path)), str(project)],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env=env,
            )
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert err.count("script ran") == 1
    fetched = [ln for ln in err.splitlines() if "the JSON-RPC log worker fetched" in ln]
    assert len(fetched) == 1
    assert int(fetched[0].split("fetched ")[1].split(" ")[0]) > 0  # the worker did fetch
    assert tables(database_url, schema) == expected(chain)


async def test_the_main_module_is_as_it_was_after_a_child_starts() -> None:
    main = sys.modules["__main__"]
    before = (main.__dict__.get("__file__"), main.__dict__.get("__spec__"))
    process = multiprocessing.get_context("spawn").Process(target=os.getpid)
    await start_child(process)
    await trio.to_thread.run_sync(process.join, 60)
    assert process.exitcode == 0
    assert (main.__dict__.get("__file__"), main.__dict__.get("__spec__")) == before


async def test_starting_a_child_leaves_the_parents_sigint_handling_alone() -> None:
    """A signal receiver opened while a child starts (the run's, as it begins) restores,
    when it closes, exactly the handler there was before: SIGINT still works after."""
    # A handler of our own, whatever this process inherited (a shell starts background
    # jobs with SIGINT ignored, and "ignored" is what the old code left behind).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        await _start_beside_a_receiver()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


async def _start_beside_a_receiver() -> None:
    process = multiprocessing.get_context("spawn").Process(target=os.getpid)

    async def receive_meanwhile() -> None:
        with trio.open_signal_receiver(signal.SIGINT):
            await trio.sleep(0.2)  # past the child's start

    async with trio.open_nursery() as nursery:
        nursery.start_soon(start_child, process)
        nursery.start_soon(receive_meanwhile)
    await trio.to_thread.run_sync(process.join, 60)
    assert process.exitcode == 0


_CTRL_C = """
import multiprocessing, os, signal, time, trio
from indexer.sources._spawn import start_child

# Python's own handler, whatever was inherited: a shell starts background jobs (CI's, say)
# with SIGINT ignored, and a child would inherit that and pass for protected.
signal.signal(signal.SIGINT, signal.default_int_handler)

async def main():
    process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(1.5,))
    await start_child(process)
    for _ in range(10):  # while its interpreter starts, and after
        os.kill(process.pid, signal.SIGINT)
        await trio.sleep(0.05)
    await trio.to_thread.run_sync(process.join, 60)
    print(process.exitcode)

trio.run(main)
"""


def test_a_child_never_acts_on_a_ctrl_c() -> None:
    """Ctrl+C reaches the whole process group; the parent ends its children itself.  A child
    hit while it starts (no handler of its own yet) finishes as if nothing happened.  In a
    fresh interpreter: the first child is the one multiprocessing starts its resource
    tracker for, which unblocked SIGINT in the starting thread."""
    done = subprocess.run(
        [sys.executable, "-c", _CTRL_C], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0", done.stderr
