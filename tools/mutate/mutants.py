"""The mutant list: realistic one-line mistakes in store, persist, runtime and the API.

Each mutant replaces ``old`` (which must occur exactly once in ``file``,
relative to src/indexer; a few lines of context make it unique) with
``new``.  ``tests`` are pytest node ids that should catch it, fastest
first; they run with ``-x`` so the first failure ends the run.  ``fast``
marks the subset CI runs (``--fast``, at most 5 minutes in all).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLASSES", "MUTANTS", "Mutant"]

# The bug classes of issue 18 (the prior art's rejected PR), plus the two
# mechanisms the list also covers.
CLASSES: dict[str, str] = {
    "lost-batch": "a batch lost in the hand-off: pending slot overwritten, replaced or half-merged",
    "history": "history or checkpoint rows truncated or duplicated",
    "rollback": "a wrong rollback, or its target leaking into later writes",
    "complete": "an index or table claiming completeness after eviction",
    "effect-count": "effect-cache row counts drifting",
    "rows": "evicted or unwritten rows served or lost",
    "frontier": "the committed frontier advanced before COMMIT",
    "retry": "a retry after a lost COMMIT repeating a landed write",
    "capacity": "the capacity rule waiting wrongly (deadlock or unbounded memory)",
    "outage": "a database path that does not survive a lost connection, or two runs on one schema",
    "stall": "the stall watchdog silent, or never clearing",
    "api": "the HTTP API reading across commits, or missing a commit or rollback event",
    "api-shape": "a read path of the HTTP API answering otherwise than its contract or the executor",
    "factory": "factory children registered, fetched or rolled back wrongly (issue 15)",
    "speed": "a fast path that changes what is indexed or when it is written (issue 13)",
}


@dataclass(frozen=True, slots=True)
class Mutant:
    id: str
    cls: str
    file: str
    old: str
    new: str
    why: str
    tests: tuple[str, ...]
    fast: bool = False


STORE = "tests/test_store.py"
SNAPSHOTS = "tests/test_store_snapshots.py"
LOOP_WAITS = "tests/test_loop_waits.py"
TWO_CHAINS = "tests/test_rollback_chains.py"
HANDOFF = "tests/test_handoff.py"
WRITER = "tests/test_writer.py"
MERGE = WRITER + "::test_a_merged_batch_carries_everything_of_both_and_the_newest_of_each_chain"
STORE_MACHINE = "tests/test_store_machine.py"
EFFECTS_MACHINE = "tests/test_effects_machine.py"
REORG_MACHINE = "tests/test_reorg_machine.py"
FOLLOW = "tests/test_reorg.py::test_follows_the_head_through_reorgs"
STOPPED = "tests/test_reorg.py::test_reorg_while_stopped_is_rolled_back_on_restart"
RETRIED = (
    "tests/test_db_faults.py::test_transient_error_at_each_step_is_retried_exactly_once_in_effect"
)
RAW_REORG = "tests/test_raw_events.py::test_raw_events_follow_the_canonical_chain_through_a_reorg"
EFFECTS = "tests/test_effects.py"
EFFECT_FAILURES = "tests/test_effects.py::test_row_count_equals_the_table_after_failed_writes"
RUNTIME = "tests/test_runtime.py"
OUTAGES = "tests/test_db_outages.py::test_every_connection_killed_again_and_again"
RUN_LOCK = "tests/test_run_lock.py"
WATCHDOG = "tests/test_watchdog.py"
READER = "tests/api/test_reader.py"
SERVER = "tests/api/test_server.py"
ONE_STATEMENT = "tests/api/test_graphql_one_statement.py"
FAST_PAGE = "tests/api/test_graphql_fast.py::test_the_direct_page_path_equals_the_executor"
DECLARED = "tests/test_declared_indexes.py"
LANE = "tests/api/test_reader_fetch.py"

WALK = "tests/test_walk.py::test_a_handler_block_keeps_the_value_of_the_block_before_for_a_rollback"
FACTORIES = (
    "tests/test_factories.py::test_children_from_their_registering_block_through_reorg_and_restart"
)
FACTORY_ROLLBACK = (
    "tests/test_factories.py::test_a_rollback_forgets_the_orphaned_registrations_in_memory"
)
FACTORY_MACHINE = "tests/test_factory_machine.py"
FACTORY_SCRIPTED = FACTORY_MACHINE + "::test_factory_machine_scripted"
FACTORY_ANVIL = "tests/anvil/test_factory.py"
GRANDCHILDREN = "tests/test_factory_grandchildren.py"
WORKER = "tests/test_rpc_worker.py::test_a_prefetched_range_not_asked_for_is_discarded"
WRITER_INTERVAL = (
    "tests/test_writer.py::test_hand_overs_wait_out_the_interval_while_batches_keep_coming"
)
SHORTER = "tests/test_rpc_failover.py::test_a_shorter_chain_is_rolled_back_before_it_grows_past_the_old_tip"
_M = Mutant
# fmt: off
# One mutant per block of lines, read like a table.  A fast mutant names only
# fast tests: CI's baseline runs every test the fast mutants name.
MUTANTS: tuple[Mutant, ...] = (
    # -- lost-batch: the loop's hand-off (the one place batches merge), Batch.merge
    _M("handover-replaces-pending", "lost-batch", "runtime/_handoff.py",
       "self.pending = batch if self.pending is None else self.pending.merge(batch)",
       "self.pending = batch",
       "Handoff.offer replaces the pending batch instead of merging into it",
       (HANDOFF,), fast=True),
    _M("handover-drops-when-busy", "lost-batch", "runtime/_handoff.py",
       "            # is about to cancel the loop.\n            return\n",
       "            # is about to cancel the loop.\n            self.pending = None\n            return\n",
       "Handoff.offer drops the pending batch when the writer is busy",
       (HANDOFF,), fast=True),
    _M("handover-sends-newest-only", "lost-batch", "runtime/_handoff.py",
       "            self._send.send_nowait(self.pending)",
       "            self._send.send_nowait(batch)",
       "Handoff.offer sends the newest batch instead of the merged pending one",
       (HANDOFF,), fast=True),
    _M("next-range-drops-pending", "lost-batch", "runtime/_run.py",
       "        await self.handoff.flush()\n        return await ranges.receive()",
       "        return await ranges.receive()",
       "an idle loop waits for the next range without handing its due batch over",
       (LOOP_WAITS + "::test_a_quiet_chain_commits_the_batches_pending_in_the_loop", HANDOFF),
       fast=True),
    _M("final-flush-drops-pending", "lost-batch", "runtime/_handoff.py",
       "        if self.pending is not None:\n            await self._try_send(self.pending)\n        self._send.close()",
       "        self._send.close()",
       "the final flush closes the channel without handing over the pending batch",
       (HANDOFF, RUNTIME + "::test_example_matches_independent_computation")),
    _M("flush-forgets-handed-batch", "lost-batch", "runtime/_handoff.py",
       "        self.sent_upto, self.pending = batch.upto, None",
       "        self.sent_upto = batch.upto",
       "a handed-over batch stays pending and is merged into the next one (written twice)",
       (HANDOFF, REORG_MACHINE), fast=True),
    _M("merge-drops-checkpoints", "lost-batch", "runtime/_batch.py",
       "            self.checkpoints + later.checkpoints,",
       "            later.checkpoints,",
       "Batch.merge keeps only the later batch's checkpoint rows",
       (HANDOFF,), fast=True),
    _M("merge-drops-raw", "lost-batch", "runtime/_batch.py",
       "            self.raw + later.raw if later.raw else self.raw,",
       "            later.raw if later.raw else self.raw,",
       "Batch.merge keeps only the later batch's raw-event rows",
       (HANDOFF, RAW_REORG)),
    _M("merge-drops-history", "lost-batch", "runtime/_batch.py",
       "            self.history or later.history,",
       "            self.history,",
       "Batch.merge keeps the first batch's history flag (no history once it enters the window)",
       (HANDOFF, REORG_MACHINE)),
    _M("merge-drops-prune", "lost-batch", "runtime/_batch.py",
       "            {**self.prune, **later.prune},",
       "            self.prune,",
       "Batch.merge keeps the first batch's final blocks (pruning lags)",
       (MERGE, LOOP_WAITS + "::test_merged_batches_prune_up_to_the_newest_final_block"),
       fast=True),
    _M("merge-drops-chains", "lost-batch", "runtime/_batch.py",
       "        chains.update(later.chains)\n",
       "",
       "Batch.merge keeps the first batch's chain progress (progress lags behind the rows)",
       (HANDOFF,), fast=True),
    # -- frontier
    _M("commit-before-persist", "frontier", "runtime/_writer.py",
       "        self._in_flight = True\n",
       "        self._in_flight = True\n        store.mark_committed(batch.upto)\n",
       "Writer.write marks the batch committed before the transaction",
       (WRITER + "::test_slow_write_overlaps_processing_and_batches_merge_in_the_loop",), fast=True),
    _M("drain-waits-on-processed", "frontier", "runtime/_run.py",
       "        while self.store.committed < upto:",
       "        while self.store.processed < upto:",
       "_wait_committed (the drain before a rollback) looks at the processed frontier",
       (FOLLOW, REORG_MACHINE)),
    # -- history
    _M("snapshot-history-truncated", "history", "store/_table.py",
       "out.history.extend((id, pcp, pv) for pcp, pv in chain if pcp <= upto)",
       "out.history.extend((id, pcp, pv) for pcp, pv in chain if pcp < upto)",
       "the history snapshot leaves out a superseded change at exactly upto",
       (STORE,), fast=True),
    _M("snapshot-history-future", "history", "store/_table.py",
       "out.history.extend((id, pcp, pv) for pcp, pv in chain if pcp <= upto)",
       "out.history.extend((id, pcp, pv) for pcp, pv in chain)",
       "the history snapshot includes superseded changes above upto (written twice)",
       (SNAPSHOTS, STORE, STORE_MACHINE), fast=True),
    _M("seal-off-by-one", "history", "store/_table.py",
       "old_cp <= self.sealed:",
       "old_cp < self.sealed:",
       "EntityTable.set forgets a superseded change made exactly at the seal",
       (STORE, STORE_MACHINE, FOLLOW, REORG_MACHINE)),
    _M("commit-keeps-upto-cps", "history", "store/_table.py",
       "self.cps = {id: cp for id, cp in cps.items() if cp > upto}",
       "self.cps = {id: cp for id, cp in cps.items() if cp >= upto}",
       "mark_committed keeps changes at upto as unwritten (written again)",
       (STORE,), fast=True),
    _M("commit-keeps-upto-prev", "history", "store/_table.py",
       "keep = [c for c in chain if c[0] > upto]",
       "keep = [c for c in chain if c[0] >= upto]",
       "mark_committed keeps superseded changes at upto (history rows twice)",
       (STORE, STORE_MACHINE)),
    _M("history-later-from-database", "history", "persist/_changeset.py",
       "        last[id] = value\n",
       "",
       "_write_history reads every before-image from the database, even for later changes",
       (FOLLOW, STORE_MACHINE, REORG_MACHINE)),
    _M("write-without-history", "history", "runtime/_writer.py",
       "store.snapshot(batch.upto, history=batch.history),",
       "store.snapshot(batch.upto),",
       "Writer.write snapshots without history rows although the write keeps history",
       (STOPPED,), fast=True),
    _M("handler-block-unsealed", "history", "runtime/_walk.py",
       "            self._open(n, self.blocks[n].hash)\n",
       "            self.cp += 1\n            self.block, self.block_hash = n, self.blocks[n].hash\n"
       "            self.ctx._cp = self.store.processed = self.cp\n",
       "a block only a block handler visits is not sealed: its write erases the block before's value",
       (WALK,), fast=True),
    _M("last-checkpoint-row-dropped", "history", "runtime/_walk.py",
       "        await self._close(events)\n        await self._visit_until(last + 1)\n",
       "        self.block = -1\n        await self._visit_until(last + 1)\n",
       "the processor forgets the checkpoint row of a range's last block with events",
       (FOLLOW,), fast=True),
    # -- rollback
    _M("rollback-latest-image", "rollback", "persist/_rollback.py",
       'ORDER BY id, _checkpoint"',
       'ORDER BY id, _checkpoint DESC"',
       "the rollback restores the latest instead of the earliest before-image",
       (STOPPED,), fast=True),
    _M("rollback-keeps-checkpoints", "rollback", "persist/_rollback.py",
       '        cur.execute(sql.SQL("DELETE FROM {} WHERE id > %s").format(checkpoints), (checkpoint,))\n',
       "",
       "the rollback does not delete the checkpoints above its target",
       (STOPPED,), fast=True),
    _M("rollback-keeps-raw-events", "rollback", "persist/_rollback.py",
       "        cur.execute(\n"
       '            sql.SQL("DELETE FROM {} WHERE checkpoint > %s").format(table_ident(schema, RAW_EVENTS)),\n'
       "            (checkpoint,),\n"
       "        )\n",
       "",
       "the rollback keeps the raw-event rows above its target",
       (RAW_REORG,), fast=True),
    _M("rollback-keeps-history", "rollback", "persist/_rollback.py",
       '    cur.execute(sql.SQL("DELETE FROM {} WHERE _checkpoint > %s").format(hist), (checkpoint,))\n',
       "",
       "the rollback keeps the history rows above its target",
       (FOLLOW, STORE_MACHINE, REORG_MACHINE)),
    _M("rollback-target-off-by-one", "rollback", "persist/_rollback.py",
       "    return min(committed, int(row[0]) - 1)",
       "    return min(committed, int(row[0]))",
       "the rollback target keeps the first reorganised checkpoint",
       (STOPPED,), fast=True),
    _M("rollback-progress-kept", "rollback", "runtime/_run.py",
       "        self.processor.rolled_back(result.progress)\n",
       "",
       "after a rollback the processor keeps its progress: the new branch's first blocks are skipped",
       (STOPPED,), fast=True),
    _M("rollback-progress-off-by-one", "rollback", "persist/_rollback.py",
       "(int(first_block) - 1, int(events), int(chain_id)),",
       "(int(first_block), int(events), int(chain_id)),",
       "the rollback moves a chain's progress back to its first undone block, not the one before",
       (TWO_CHAINS, STOPPED), fast=True),
    _M("rollback-skips-memory", "rollback", "store/_store.py",
       "        for cls, rows in restored.items():\n            self.tables[cls].restore(rows)\n",
       "",
       "Store.rollback moves the frontiers but leaves the restored rows out of memory",
       (STORE_MACHINE, FOLLOW, REORG_MACHINE)),
    _M("restore-skips-index", "complete", "store/_table.py",
       "            if self._active:\n                self._reindex(id, old, value)\n",
       "",
       "EntityTable.restore leaves the find indices as they were before the rollback",
       (STORE_MACHINE, REORG_MACHINE)),
    # -- retry
    _M("retry-repeats-landed-write", "retry", "persist/_retrying.py",
       "                if attempt and await trio.to_thread.run_sync(",
       "                if attempt > 1 and await trio.to_thread.run_sync(",
       "the first retry does not ask whether the failed attempt committed",
       (RETRIED + "[committed]",), fast=True),
    # -- effect-count
    _M("effect-count-all-rows", "effect-count", "runtime/_writer.py",
       "self._effect_rows[name] = self._effect_rows.get(name, 0) + new",
       "self._effect_rows[name] = self._effect_rows.get(name, 0) + len(changes.effects[name])",
       "the effect row count adds every written output, not only new keys",
       (EFFECTS + "::test_outputs_of_another_type_are_invalidated_and_recomputed",), fast=True),
    _M("effect-upserts-counted-new", "effect-count", "persist/_effects.py",
       "    return sum(1 for (inserted,) in cur.fetchall() if inserted)",
       "    return len(rows)",
       "write_effect_outputs reports every upserted row as new",
       (EFFECTS + "::test_outputs_of_another_type_are_invalidated_and_recomputed", EFFECTS_MACHINE)),
    _M("effect-count-before-commit", "effect-count", "persist/_changeset.py",
       "write.effects_inserted[name] = write_effect_outputs(cur, schema, name, rows)",
       "write.effects_inserted[name] = write.effects_inserted.get(name, 0)"
       " + write_effect_outputs(cur, schema, name, rows)",
       "new-key counts of a rolled-back attempt are kept and added again by the retry",
       (EFFECT_FAILURES + "[transient]",), fast=True),
    _M("effect-lost-commit-not-recounted", "effect-count", "runtime/_writer.py",
       "            self._effect_rows.update(counts)\n",
       "",
       "after a lost COMMIT answer the effect row counts are not recounted",
       (EFFECT_FAILURES + "[lost-commit]",), fast=True),
    # -- rows: evicted or unwritten rows served or lost
    _M("evict-dirty-ids", "rows", "store/_table.py",
       "            if id not in cps:",
       "            if id not in self.prev:",
       "eviction spares ids with superseded changes instead of ids with unwritten ones",
       (STORE, STORE_MACHINE)),
    _M("effect-evicts-pending", "rows", "store/_effect_cache.py",
       "victims = [k for k in self.values if k not in self.pending][: max(0, count)]",
       "victims = list(self.values)[: max(0, count)]",
       "EffectCache.evict drops pending (unwritten) outputs too",
       (STORE, EFFECTS_MACHINE)),
    _M("effect-commit-clears-pending", "rows", "store/_effect_cache.py",
       "        done = [k for k, (_inp, cp) in self.pending.items() if cp <= upto]",
       "        done = list(self.pending)",
       "EffectCache.mark_committed forgets outputs made while the write was in flight",
       (EFFECTS_MACHINE, EFFECTS)),
    _M("snapshot-oldest-superseded", "rows", "store/_table.py",
       "for pcp, value in reversed(chain):",
       "for pcp, value in chain:",
       "the snapshot takes the oldest superseded change at or below upto, not the newest",
       (STORE,), fast=True),
    _M("snapshot-value-off-by-one", "rows", "store/_table.py",
       "            if cp <= upto:\n                value = values[id]",
       "            if cp < upto:\n                value = values[id]",
       "the snapshot skips a latest change made exactly at upto",
       (STORE, STORE_MACHINE)),
    _M("load-resurrects-deleted", "rows", "store/_table.py",
       "            id = row[id_pos]\n            if id not in values:",
       "            id = row[id_pos]\n            if values.get(id) is None:",
       "EntityTable.load lets a committed row overwrite an id deleted (or absent) in memory",
       (SNAPSHOTS, STORE, STORE_MACHINE), fast=True),
    # -- complete: indices and tables after eviction
    _M("evict-keeps-index-complete", "complete", "store/_table.py",
       "                    self._index_complete[name].discard(v)\n",
       "",
       "a complete find value stays complete after one of its members is evicted",
       (STORE,), fast=True),
    _M("evict-keeps-table-complete", "complete", "store/_table.py",
       "        self.complete = False\n        self.evictions += len(victims)",
       "        self.evictions += len(victims)",
       "a table stays marked complete after it evicted rows",
       (STORE,), fast=True),
    _M("evict-filter-notes-absent", "complete", "store/_table.py",
       "            if gone is not None and old is not None:",
       "            if gone is not None and old is None:",
       "evicted ids are missing from the filter of evicted ids (absent ones noted instead)",
       (STORE, STORE_MACHINE)),
    _M("absent-without-filter", "complete", "store/_table.py",
       "        return gone is not None and id not in gone",
       "        return gone is None or id not in gone",
       "a table that was never complete answers misses as absent",
       (STORE, STORE_MACHINE)),
    _M("forget-keeps-filter", "complete", "store/_table.py",
       "        self.gone = None\n",
       "",
       "EntityTable.forget keeps the filter of evicted ids",
       (STORE, STORE_MACHINE)),
    _M("resume-marks-tables-complete", "complete", "runtime/_startup.py",
       "table.complete = not await run(\n            f\"checking table {spec.table}\", functools.partial(table_has_rows, spec=spec)\n        )",
       "table.complete = True",
       "a resumed run treats tables that hold rows as complete",
       (RUNTIME + "::test_write_failure_keeps_last_commit_and_resume_matches",), fast=True),
    # -- outage: every database path retries; one run per schema
    _M("loads-not-retried", "outage", "persist/_connection.py",
       "        if is_transient(exc):\n            raise\n",
       "",
       "a load's transient error is wrapped as a DatabaseError, so it is never retried",
       (OUTAGES,)),
    _M("run-lock-skipped", "outage", "runtime/_run.py",
       "                lock_schema_for_run(session.conn, schema)",
       "                pass",
       "a second run on the same schema is not refused",
       (RUN_LOCK,), fast=True),
    _M("shorter-chain-waited", "rollback", "sources/_rpc_pool.py",
       "        return None, went_back or everyone",
       "        return None, False",
       "with several nodes a shorter chain is waited for instead of rolled back",
       (SHORTER,), fast=True),
    # -- stall
    _M("stall-never-clears", "stall", "runtime/_watchdog.py",
       "                if self.stalls.pop(chain, None) is not None:",
       "                if self.stalls.get(chain) is not None and False:",
       "a stalled chain stays stalled after it moves again",
       (WATCHDOG,), fast=True),
    # -- api
    _M("api-reads-committed", "api", "api/_reader.py",
       "conn.isolation_level = IsolationLevel.REPEATABLE_READ",
       "conn.isolation_level = IsolationLevel.READ_COMMITTED",
       "an API request's statements see different commits (items and totalCount disagree)",
       (READER + "::test_a_request_reads_one_snapshot",), fast=True),
    _M("commit-not-announced", "api", "persist/_changeset.py",
       "        notify(cur, schema, \"commit\", {c.chain_id: c.block for c in chains})\n",
       "",
       "a commit is not announced on /events",
       (SERVER,)),
    _M("rollback-not-announced", "api", "persist/_rollback.py",
       "        notify(cur, schema, \"reorg\", {c: progress[c][0] for c in sorted(moved) if c in progress})\n",
       "",
       "a rollback is not announced on /events",
       (SERVER,)),
    # -- api-shape: one statement per root field, the direct paths, declared indexes
    _M("two-roots-without-a-transaction", "api-shape", "api/_graphql.py",
       "    return reads <= 1",
       "    return reads <= 2",
       "a request with two root fields runs them outside one transaction (two snapshots)",
       (ONE_STATEMENT + "::test_which_operations_run_one_statement",), fast=True),
    _M("empty-page-phantom-row", "api-shape", "api/_gql_query.py",
       '                    if r["id"] is not None\n',
       "",
       "an empty page selected with totalCount returns the scalars' all-NULL row as an item",
       (ONE_STATEMENT,), fast=True),
    _M("direct-page-swaps-page-info", "api-shape", "api/_gql_fast.py",
       '"hasNextPage": ("has_next", NEXT)',
       '"hasNextPage": ("has_previous", NEXT)',
       "the direct page path answers hasNextPage otherwise than the executor",
       (FAST_PAGE,), fast=True),
    _M("undeclared-index-kept", "api-shape", "persist/_schema.py",
       "for name in sorted(present - wanted.keys()):",
       "for name in sorted(present - wanted.keys() - present):",
       "an index no longer in __indexes__ is never dropped",
       (DECLARED,), fast=True),
    _M("lane-reuses-a-cancelled-connection", "api-shape", "api/_reader.py",
       "                _close_quietly(conn)\n                raise\n",
       "                self._lane_idle.append((conn, prepared))\n                raise\n",
       "a statement cancelled on the event loop leaves its connection in the pool, mid-statement",
       (LANE + "::test_a_cancelled_fetch_closes_its_connection",), fast=True),
    _M("lane-prepares-by-text-alone", "api-shape", "api/_lane.py",
       "    key = (query, types)\n",
       "    key = (query, ())\n",
       "a statement prepared for small ints is reused for a numeric-sized one",
       (LANE + "::test_a_statement_is_prepared_once_per_connection_and_parameter_types",),
       fast=True),
    _M("lane-keeps-escaped-percent", "api-shape", "api/_lane.py",
       '            return b"%"\n',
       '            return b"%%"\n',
       "a literal %% reaches PostgreSQL doubled on the event loop's path",
       (LANE + "::test_fetch_reads_what_the_thread_path_reads",), fast=True),
    # -- capacity
    _M("capacity-wait-keeps-pending", "capacity", "runtime/_run.py",
       "            await handoff.flush()\n            # The write just handed",
       "            # The write just handed",
       "the capacity rule waits for a commit without handing over its pending batch (deadlock)",
       (LOOP_WAITS, HANDOFF), fast=True),
    _M("capacity-guard-ignores-in-flight", "capacity", "runtime/_run.py",
       "if handoff.pending is None and handoff.sent_upto <= store.committed:",
       "if handoff.pending is None:",
       "the capacity rule stops waiting while a batch is still in flight",
       (LOOP_WAITS + "::test_the_loop_waits_for_a_write_in_flight_when_over_its_target", HANDOFF),
       fast=True),
    # -- factory: registrations are state (store/_children.py, persist/_children.py)
    _M("children-not-rolled-back", "factory", "store/_store.py",
       "        self.children.rollback(checkpoint)\n",
       "",
       "a rollback restores the entities but keeps the orphaned blocks' registrations in memory",
       (FACTORY_ROLLBACK,), fast=True),
    _M("children-rollback-off-by-one", "factory", "store/_children.py",
       "undone = [a for a, (_b, _i, cp) in known.items() if cp > checkpoint]",
       "undone = [a for a, (_b, _i, cp) in known.items() if cp >= checkpoint]",
       "a rollback also forgets the registrations of the checkpoint it returns to",
       (FACTORY_ANVIL,)),
    _M("children-undo-not-persisted", "factory", "persist/_rollback.py",
       "        undo_children(cur, schema, checkpoint)\n",
       "",
       "the rollback transaction leaves orphaned registrations in _indexer_children",
       (FACTORIES, FACTORY_SCRIPTED), fast=True),
    _M("merge-drops-children", "factory", "runtime/_batch.py",
       "            self.children + later.children if later.children else self.children,",
       "            later.children if later.children else self.children,",
       "Batch.merge keeps only the later batch's registrations (a restart forgets the others)",
       (MERGE, FACTORY_SCRIPTED), fast=True),
    _M("children-not-written", "factory", "runtime/_writer.py",
       "            children=batch.children,",
       "            children=[],",
       "a batch's registrations are not written in its transaction (a restart forgets them)",
       (FACTORIES, FACTORY_SCRIPTED), fast=True),
    _M("children-not-reloaded", "factory", "runtime/_startup.py",
       "    store.children.load(\n",
       "    (\n",
       "a run starts without the registrations of earlier runs",
       (FACTORIES, FACTORY_SCRIPTED), fast=True),
    _M("children-kept-after-lost-rollback", "factory", "runtime/_writer.py",
       "            store.children.load(children)\n",
       "",
       "a rollback whose answer was lost keeps the orphaned registrations in memory",
       (FACTORY_ROLLBACK,), fast=True),
    _M("reregistration-overwrites", "factory", "store/_children.py",
       "        if address in known:\n            return False\n",
       "",
       "registering a known address again replaces the first registration (and writes it twice)",
       (FACTORIES, FACTORY_SCRIPTED), fast=True),
    _M("mid-range-registration-not-refetched", "factory", "runtime/_processor.py",
       "            if factories is not None and (factories.uncovered or factories.rescan):\n"
       "                await fetch_rest(rng, factories, items, pos)\n",
       "",
       "a child registered by a handler misses its logs in the rest of the range it was fetched in",
       (FACTORIES, FACTORY_SCRIPTED), fast=True),
    _M("prefetched-range-not-completed", "factory", "runtime/_processor.py",
       "                self._batch = items = await fetch_missing(rng, factories, items)\n",
       "                pass\n",
       "a range fetched before earlier ranges registered children misses those children's logs",
       (FACTORY_MACHINE, FACTORY_ANVIL)),
    _M("creation-block-off-by-one", "factory", "runtime/_factories.py",
       "    return address in known or early.get((contract, address), _NEVER) <= block",
       "    return address in known or early.get((contract, address), _NEVER) < block",
       "a child's logs in its creation block (its constructor's) are dropped",
       (FACTORIES,), fast=True),
    _M("grandchild-from-its-log", "factory", "runtime/_child_fetch.py",
       "            key: block for key, block in factories.scan(wave).items() if factories.needs_fetch(*key)\n",
       "            key: block for key, block in factories.scan(wave).items() if not factories.needs_fetch(*key)\n",
       "the children that a handler-registered child registers count from their log, not their block",
       (GRANDCHILDREN,), fast=True),
    # -- speed: what the fast paths must keep exact
    _M("worker-prefetch-taken-for-another-range", "speed", "sources/_rpc_worker.py",
       "        if self._pending is not None and self._pending != request:\n",
       "        if False:\n",
       "the log worker's prefetched answer is taken for a range it was not asked for",
       (WORKER,), fast=True),
    _M("catch-up-interval-at-the-head", "speed", "runtime/_handoff.py",
       "        factor = 1 if pending.history or not self._roomy() else CATCH_UP_FACTOR\n",
       "        factor = 1 if not self._roomy() else CATCH_UP_FACTOR\n",
       "hand-overs stay four times further apart once the run is at the head",
       (WRITER_INTERVAL,), fast=True),
    _M("catch-up-interval-near-the-target", "speed", "runtime/_handoff.py",
       "        factor = 1 if pending.history or not self._roomy() else CATCH_UP_FACTOR\n",
       "        factor = 1 if pending.history else CATCH_UP_FACTOR\n",
       "hand-overs stay four times further apart with the store near its memory target",
       (WRITER_INTERVAL,), fast=True),
    _M("grandchildren-not-rescanned", "factory", "runtime/_factories.py",
       "            if handler and contract in self.parents:\n                self.rescan = True\n",
       "",
       "a handler-registered parent's factory events in the rest of the range are not looked for",
       (GRANDCHILDREN,), fast=True),
)
# fmt: on
