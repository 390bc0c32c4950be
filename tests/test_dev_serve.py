"""``indexer dev``: the API across a reload that changes the entities, and a project broken at start.

Real processes, files, HTTP on a free loopback port and PostgreSQL (see
tests/_dev.py).  Nothing here depends on how long anything takes: the
checks are on what every request got, and the waits only bound a reload
that never happens.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from ._dev import TRANSFERS, WAIT, Dev, count_rows, init_project

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

LIST = "{ eRC20Transfers(limit: 1) { totalCount items { id value } } }"
DOUBLED = "{ eRC20Transfers(limit: 1000) { totalCount items { value doubled } } }"


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> Iterator[Path]:
    yield from init_project(tmp_path, database_url)


@dataclass
class Poller:
    """A client that asks ``/health``, ``/ready`` and ``POST /graphql`` in turn until stopped.

    One keep-alive connection, as a dapp or a GraphiQL tab would hold: a
    restarted server shows as a failed request, not only as a refused one.
    """

    base: str
    answers: list[tuple[str, int, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=WAIT) as client:
            while not self.stop.is_set():
                for method, path, body in (
                    ("GET", "/health", None),
                    ("GET", "/ready", None),
                    ("POST", "/graphql", {"query": LIST}),
                ):
                    try:
                        r = client.request(method, path, json=body)
                    except httpx.HTTPError as exc:
                        self.failures.append(f"{method} {path}: {type(exc).__name__}: {exc}")
                        continue
                    json = r.headers.get("content-type", "").startswith("application/json")
                    self.answers.append((path, r.status_code, r.json() if json else r.text))


def _doubled_is_served(base: str) -> bool:
    r = httpx.post(f"{base}/graphql", json={"query": DOUBLED}, timeout=WAIT)
    if r.status_code != 200 or "errors" in r.json():
        return False
    page = r.json()["data"]["eRC20Transfers"]
    if page["totalCount"] != TRANSFERS:
        return False
    items = page["items"]
    assert len(items) == 1000
    assert all(int(i["doubled"]) == 2 * int(i["value"]) for i in items), items
    return True


def test_the_api_answers_throughout_a_reload_that_adds_a_field(
    project: Path, database_url: str
) -> None:
    schema = project.name
    handlers = project / "handlers.py"
    original = handlers.read_text()
    with Dev(
        str(project), "--serve", "--port", "0", env={"INDEXER_DATABASE_URL": database_url}
    ) as dev:
        dev.wait_for("the first run", lambda: count_rows(database_url, schema, "true") == TRANSFERS)
        base = dev.api_base()
        dev.wait_for("the run's end", lambda: "waiting for a change" in dev.output)
        r = httpx.post(f"{base}/graphql", json={"query": DOUBLED}, timeout=WAIT)
        assert r.status_code == 400  # no such field yet
        poller = Poller(base)
        thread = threading.Thread(target=poller.run, daemon=True)
        thread.start()
        try:
            dev.wait_for("the poller's first answers", lambda: len(poller.answers) >= 3)
            before_edit = len(poller.answers)
            # The edit: ERC20Transfer gets a field, so the GraphQL schema changes.
            edited = original.replace(
                "    transaction_hash: str\n\n\nclass ERC20Approval",
                "    transaction_hash: str\n    doubled: int\n\n\nclass ERC20Approval",
                1,
            ).replace(
                "            transaction_hash=event.transaction_hash,\n",
                "            transaction_hash=event.transaction_hash,\n"
                '            doubled=p["value"] * 2,\n',
                1,
            )
            assert edited.count("doubled") == 2
            mark = len(dev.lines)
            handlers.write_text(edited)
            dev.wait_for("the new entities served", lambda: _doubled_is_served(base))
            dev.wait_for("the run's end", lambda: "waiting for a change" in dev.text_after(mark))
            during = len(poller.answers) - before_edit
            final = len(poller.answers)
            dev.wait_for("answers after the reload", lambda: len(poller.answers) >= final + 3)
        finally:
            poller.stop.set()
            thread.join(timeout=WAIT)
        assert during > 0  # the poller asked across the reload
        assert poller.failures == []  # not one connection refused, reset or timed out
        statuses = {(path, status) for path, status, _ in poller.answers}
        assert {s for p, s in statuses if p == "/health"} == {200}
        assert {s for p, s in statuses if p == "/ready"} <= {200, 503}
        assert {s for p, s in statuses if p == "/graphql"} <= {200, 503}
        for path, status, body in poller.answers:
            if path == "/graphql" and status == 503:
                # What passes during a reset, said in GraphQL's shape.
                assert body["errors"][0]["message"], body
        # After the reload every answer is the full data again.
        for path, status, body in poller.answers[final:]:
            assert status == 200, (path, body)
            if path == "/graphql":
                assert body["data"]["eRC20Transfers"]["totalCount"] == TRANSFERS
        assert "dev: the API serves the new entities" in dev.text_after(mark)

        dev.proc.send_signal(signal.SIGINT)
        assert dev.proc.wait(timeout=WAIT) == 0, dev.output


def test_a_project_broken_when_dev_starts_is_waited_for(project: Path, database_url: str) -> None:
    schema = project.name
    config = project / "indexer.yaml"
    handlers = project / "handlers.py"
    good_config, good_handlers = config.read_text(), handlers.read_text()
    assert "    end_block:" in good_config
    config.write_text(good_config.replace("    end_block:", "    end_blok:", 1))
    with Dev(
        str(project), "--serve", "--port", "0", env={"INDEXER_DATABASE_URL": database_url}
    ) as dev:
        # 1. The bad indexer.yaml: its error (file and key), then dev waits.
        dev.wait_for("the config error", lambda: "end_blok" in dev.output)
        dev.wait_for("waiting", lambda: "waiting for a change" in dev.output)
        shown = dev.output
        assert "indexer.yaml" in shown
        assert "error:" in shown
        assert dev.proc.poll() is None

        # 2. The config fixed, the handlers not: the API starts at once and
        # says why GraphQL cannot answer; the run shows the syntax error.
        mark = len(dev.lines)
        handlers.write_text(good_handlers + "\ndef broken(:\n")
        config.write_text(good_config)
        dev.wait_for("the syntax error", lambda: "SyntaxError" in dev.text_after(mark))
        dev.wait_for("waiting", lambda: "waiting for a change" in dev.text_after(mark))
        assert "handlers.py" in dev.text_after(mark)
        base = dev.api_base()
        assert httpx.get(f"{base}/health", timeout=WAIT).status_code == 200
        r = httpx.post(f"{base}/graphql", json={"query": LIST}, timeout=WAIT)
        assert r.status_code == 503
        assert "could not be loaded" in r.json()["errors"][0]["message"]

        # 3. The handlers fixed: the data arrives and GraphQL serves it.
        handlers.write_text(good_handlers)
        dev.wait_for("the data", lambda: count_rows(database_url, schema, "true") == TRANSFERS)
        r = httpx.post(f"{base}/graphql", json={"query": LIST}, timeout=WAIT)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["eRC20Transfers"]["totalCount"] == TRANSFERS

        dev.proc.send_signal(signal.SIGINT)
        assert dev.proc.wait(timeout=WAIT) == 0, dev.output
