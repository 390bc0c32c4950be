"""Child processes of the API benchmark: the framework's CLI (``serve``, ``run``) and the load generator."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any

from _paths import BENCH, ROOT

if TYPE_CHECKING:
    from pathlib import Path

LOADGEN = BENCH / "_api" / "loadgen.py"


class Child:
    """A process whose standard output lines are collected (by a thread) as they come."""

    def __init__(
        self, cmd: list[str], env: dict[str, str], log: Path, *, stdin: bool = False
    ) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        self._err = open(log.with_suffix(".err"), "wb")  # noqa: SIM115 (closed in wait())
        self.name = " ".join(cmd[1:4])
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
            env=env,
            cwd=ROOT,
            text=True,
        )
        self.lines: list[str] = []
        self.cpu_seconds: float | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first output line matching ``pattern``; RuntimeError if none comes in time."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if m := rx.search(line):
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    break
                self._changed.wait(min(left, 0.5))
        raise RuntimeError(
            f"no line matching {pattern!r} from `{self.name} …`"
            f" (exit status {self.proc.poll()}); stderr: {self.stderr_tail()}"
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 60.0) -> int:
        """SIGINT (a clean stop for the CLI), then wait; SIGKILL if it does not end in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float = 600.0) -> int:
        """Wait for the end (SIGKILL after ``timeout`` s); sets :attr:`cpu_seconds`."""
        deadline = time.monotonic() + timeout
        # os.wait4 rather than Popen.wait: it also gives the CPU time (the process's
        # own plus its reaped children's, e.g. the file reader).
        while self.proc.returncode is None:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid == self.proc.pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.cpu_seconds = usage.ru_utime + usage.ru_stime
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                deadline = float("inf")
            time.sleep(0.02)
        code = self.proc.returncode
        self._thread.join(timeout=10)
        self._err.close()
        self.log.with_suffix(".out").write_text("\n".join(self.lines) + "\n")
        return code

    @property
    def stdout(self) -> str:
        return "\n".join(self.lines) + "\n"

    def stderr_tail(self, n: int = 8) -> str:
        if not self._err.closed:
            self._err.flush()
        text = self.log.with_suffix(".err").read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-n:])


def indexer_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "indexer", *args]


def start_server(
    project: Path, env: dict[str, str], log: Path, workers: int = 1
) -> tuple[Child, str]:
    """``indexer serve PROJECT --port 0 [--workers N]``, answering ``/health``; (process, URL)."""
    extra = ["--workers", str(workers)] if workers > 1 else []
    child = Child(indexer_cmd("serve", str(project), "--port", "0", *extra), env, log)
    try:
        base = child.wait_for(r"serving .* on (http://[^ ,]+)", timeout=60).group(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
    except BaseException:
        child.stop()
        raise
    return child, base


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1].rstrip("/"))


def run_closed(spec: dict[str, Any], work: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run the load generator's closed-loop scenarios to their end; its results."""
    work.mkdir(parents=True, exist_ok=True)
    spec_path, out_path = work / "closed-spec.json", work / "closed-out.json"
    spec_path.write_text(json.dumps(spec))
    out_path.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, str(LOADGEN), str(spec_path), str(out_path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not out_path.exists():
        raise RuntimeError(
            f"load generator exit status {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    result: dict[str, Any] = json.loads(out_path.read_text())
    return result


class OpenLoop:
    """The load generator in open-loop mode: started early, then ``go(port)`` and ``stop()``."""

    def __init__(self, spec: dict[str, Any], work: Path, env: dict[str, str], name: str) -> None:
        work.mkdir(parents=True, exist_ok=True)
        spec_path, self.out = work / f"{name}-spec.json", work / f"{name}-out.json"
        spec_path.write_text(json.dumps(spec))
        self.out.unlink(missing_ok=True)
        self.child = Child(
            [sys.executable, str(LOADGEN), str(spec_path), str(self.out)],
            env,
            work / name,
            stdin=True,
        )
        # Interpreter start-up and imports happen now, before the measured run.
        self.child.wait_for(r"^ready$", timeout=60)
        self.started: float | None = None

    def go(self, port: int, server_pid: int) -> None:
        self.child.send(f"go {port} {server_pid}")
        self.started = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        with contextlib.suppress(BrokenPipeError):  # it may have ended already
            self.child.send("stop")
        code = self.child.wait(timeout=60)
        if code != 0 or not self.out.exists():
            raise RuntimeError(f"load generator exit status {code}: {self.child.stderr_tail()}")
        result: dict[str, Any] = json.loads(self.out.read_text())
        return result
