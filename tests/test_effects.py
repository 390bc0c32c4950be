"""Effects: de-duplicated, cached, rate-limited external calls, and their row counts."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import trio

from indexer import (
    ConfigError,
    Metrics,
    RunOptions,
    effect,
    load_config,
    load_handlers,
    run_project,
)
from indexer.handlers import conforms
from indexer.testing import RpcServer, ScriptedChain, open_rpc_server

from ._chains import (
    TOKENS,
    framework_rows,
    make_rpc_project,
    replace_logs,
    scripted_chain,
    set_end_block,
)
from ._projects import raised

if TYPE_CHECKING:
    from pathlib import Path

    import trio.testing

HANDLERS = """
from indexer import Context, Entity, Event, effect, on

calls = {"label": 0, "plain": 0}


@effect(rate_limit=RATE)
async def label(address: str) -> OUTPUT:
    calls["label"] += 1
    return VALUE


@effect(cache=False)
async def plain(address: str) -> int:
    calls["plain"] += 1
    return len(address)


class Token(Entity):
    id: str
    label: str
    length: int
    transfers: int = 0


@on("Token", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    info = await ctx.effect(label, event.address)
    length = await ctx.effect(plain, event.address)
    old = await ctx.get(Token, event.address)
    ctx.set(Token(id=event.address, label=str(info), length=length,
                  transfers=(old.transfers if old else 0) + 1))
"""


def handlers_source(
    output: str = "dict[str, int]", value: str | None = None, rate: str = "None"
) -> str:
    value = value or '{"n": int(address[-2:], 16)}'
    return HANDLERS.replace("OUTPUT", output).replace("VALUE", value).replace("RATE", rate)


def project_with(tmp_path: Path, schema: str, url: str, end: int, source: str, **kw: Any) -> Path:
    project = make_rpc_project(tmp_path, schema, url, end_block=end, **kw)
    (project / "handlers.py").write_text(source)
    return project


async def run_counting(
    project: Path, database_url: str, **options: Any
) -> tuple[dict[str, int], Metrics]:
    config = load_config(project)
    handlers = load_handlers(config)
    metrics = Metrics()
    opts = RunOptions(
        database_url=database_url,
        handle_signals=False,
        write_interval=0.0,
        metrics=metrics,
        rpc_tuning={"client_options": {"backoff_base": 0.01, "backoff_cap": 0.05}},
        **options,
    )
    await run_project(config, handlers, opts)
    return dict(handlers.module.calls), metrics


def cache_rows(url: str, schema: str) -> int:
    ((n,),) = framework_rows(url, schema, "SELECT count(*) FROM {}._indexer_effect_label")
    return int(n)


def metric_rows(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("indexer_effect_cache_rows", {"effect": "label"})


async def test_calls_are_deduplicated_cached_and_counted(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    chain, _rng = scripted_chain(31, head=40)
    async with open_rpc_server(chain) as server:
        project = project_with(tmp_path, schema, server.url, 20, handlers_source())
        calls, metrics = await run_counting(project, database_url, chunk_logs=5)
        # Two tokens: one call each in the whole run (batches share the cache).
        assert calls["label"] == len(TOKENS)
        # Uncached: once per batch and input at most, more than once over the run.
        assert len(TOKENS) < calls["plain"]
        assert cache_rows(database_url, schema) == len(TOKENS)
        assert metric_rows(metrics) == len(TOKENS)
        stored = framework_rows(
            database_url,
            schema,
            "SELECT input, output FROM {}._indexer_effect_label ORDER BY input",
        )
        assert stored == [(t, {"n": int(t[-2:], 16)}) for t in sorted(TOKENS)]
        # A later run reads the cache: no calls at all.
        set_end_block(project, 40)
        calls, metrics = await run_counting(project, database_url)
        assert calls["label"] == 0
        assert metric_rows(metrics) == cache_rows(database_url, schema) == len(TOKENS)
    tokens = framework_rows(database_url, schema, "SELECT id, label FROM {}.token ORDER BY id")
    assert tokens == [(t, str({"n": int(t[-2:], 16)})) for t in sorted(TOKENS)]


async def test_outputs_of_another_type_are_invalidated_and_recomputed(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    chain, _rng = scripted_chain(32, head=20)
    async with open_rpc_server(chain) as server:
        project = project_with(tmp_path, schema, server.url, 10, handlers_source())
        await run_counting(project, database_url)
        # The function changed its return type: stored dicts no longer fit.
        (project / "handlers.py").write_text(handlers_source("str", "address.upper()"))
        set_end_block(project, 20)
        calls, metrics = await run_counting(project, database_url)
    assert calls["label"] == len(TOKENS)
    invalidated = metrics.registry.get_sample_value(
        "indexer_effect_cache_invalidations_total", {"effect": "label"}
    )
    assert invalidated == len(TOKENS)
    assert metric_rows(metrics) == cache_rows(database_url, schema) == len(TOKENS)
    stored = framework_rows(database_url, schema, "SELECT output FROM {}._indexer_effect_label")
    assert sorted(o for (o,) in stored) == sorted(t.upper() for t in TOKENS)


@pytest.mark.parametrize("fail", ["permanent", "transient", "lost-commit"])
async def test_row_count_equals_the_table_after_failed_writes(
    tmp_path: Path, database_url: str, schema: str, fail: str
) -> None:
    chain, _rng = scripted_chain(33, head=30)
    failed: list[str] = []

    def fault(step: str) -> None:
        if failed:
            return
        if fail == "permanent" and step == "commit":
            failed.append(step)
            raise OSError("simulated write failure")
        if fail == "transient" and step == "commit":
            failed.append(step)
            raise psycopg.OperationalError("simulated: connection lost")
        if fail == "lost-commit" and step == "committed":
            failed.append(step)
            raise psycopg.OperationalError("simulated: connection lost after COMMIT")

    async with open_rpc_server(chain) as server:
        project = project_with(tmp_path, schema, server.url, 30, handlers_source())
        if fail == "permanent":
            with raised(OSError):
                await run_counting(project, database_url, fault=fault)
            assert cache_rows(database_url, schema) == 0  # nothing of the failed write
        _calls, metrics = await run_counting(project, database_url, fault=fault)
    assert failed
    assert metric_rows(metrics) == cache_rows(database_url, schema) == len(TOKENS)


async def test_effects_survive_a_reorg(tmp_path: Path, database_url: str, schema: str) -> None:
    chain, rng = scripted_chain(34, head=30)
    async with open_rpc_server(chain) as server:
        project = project_with(
            tmp_path, schema, server.url, 30, handlers_source(), max_reorg_depth=10
        )
        await run_counting(project, database_url)
        before = framework_rows(
            database_url, schema, "SELECT key, output FROM {}._indexer_effect_label"
        )
        chain.reorg(6, replace_logs(rng, chain, 6))
        set_end_block(project, 30)
        calls, metrics = await run_counting(project, database_url)
    rollbacks = metrics.registry.get_sample_value("indexer_reorg_rollbacks_total", {"chain": "1"})
    assert rollbacks == 1  # the reorg was seen and rolled back
    assert calls["label"] == 0  # not rolled back, so not recomputed
    after = framework_rows(database_url, schema, "SELECT key, output FROM {}._indexer_effect_label")
    assert sorted(after) == sorted(before)
    assert metric_rows(metrics) == len(TOKENS)


async def test_rate_limit_spaces_calls_in_virtual_time(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, database_url: str, schema: str
) -> None:
    """Rate 2/s: the calls for 8 distinct inputs (of one batch) start 0.5 s apart."""
    started: list[float] = []
    logs: dict[int, list[Any]] = {}
    from indexer.testing import LogSpec

    from ._chains import TRANSFER

    holder = "0x" + "00" * 12 + "11" * 20
    for i in range(8):
        logs[1 + i] = [
            LogSpec("0x" + f"{i + 1:040x}", (TRANSFER, holder, holder), "0x" + "00" * 31 + "01")
        ]
    chain = ScriptedChain(1, head=10, logs=logs)
    server = RpcServer(chain)
    source = handlers_source(rate="2.0").replace(
        'calls["label"] += 1', 'calls["label"] += 1\n    STARTED.append(trio.current_time())'
    )
    source = "import trio\nSTARTED: list[float] = []\n" + source
    project = project_with(tmp_path, schema, "http://scripted/", 10, source)
    config = load_config(project)
    handlers = load_handlers(config)
    opts = RunOptions(
        database_url=database_url,
        handle_signals=False,
        rpc_tuning={"client_options": {"transport": server.transport()}},
    )
    await run_project(config, handlers, opts)
    started = handlers.module.STARTED
    assert len(started) == 8
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert all(g >= 0.5 - 1e-9 for g in gaps), gaps


def test_effect_declarations_are_checked() -> None:
    def sync(x: int) -> int:
        return x

    with pytest.raises(ConfigError, match="async def"):
        effect(sync)  # type: ignore[arg-type]

    async def untyped(x: int):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(ConfigError, match="return type"):
        effect(untyped)

    async def ok(x: int) -> int:
        return x

    with pytest.raises(ConfigError, match="name"):
        effect(name="bad name!")(ok)
    with pytest.raises(ConfigError, match="rate_limit"):
        effect(rate_limit=0)(ok)
    e = effect(ok)
    assert e.name == "ok"
    assert e.key({"b": 1, "a": 2})[0] == e.key({"a": 2, "b": 1})[0]
    with pytest.raises(TypeError, match="JSON"):
        e.key(object())


def test_conforms() -> None:
    assert conforms({"a": [1, 2]}, dict[str, list[int]])
    assert not conforms({"a": [1, "2"]}, dict[str, list[int]])
    assert conforms(None, int | None)
    assert not conforms(True, int)
    assert conforms(3, float)
    assert not conforms("3", int)
    assert conforms([1, "x", None], list[Any])
