"""Several processes racing on one run, for every backend that several processes share.

A store is named by a spec, ``("sqlite", path)`` or ``("postgres", url)``, so
that each spawned process opens its own.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from podflow.states import RunStatus, is_terminal
from podflow.store.base import Store
from tests.conftest import at, make_run

PROCESSES = 8
Spec = tuple[str, str]


def open_spec(spec: Spec) -> Store:
    kind, where = spec
    if kind == "postgres":
        from podflow.store.postgres import PostgresStore

        return PostgresStore(where, heartbeat_timeout_s=60, max_attempts=3, pool_size=1)
    from podflow.store.sqlite import SqliteStore

    return SqliteStore(where, heartbeat_timeout_s=60, max_attempts=3)


def _claimer(spec: Spec, run_id: str, index: int, barrier: Any, results: Any) -> None:
    store = open_spec(spec)
    barrier.wait()
    results.put(store.claim(run_id, now=at(1)))
    store.close()


def _finisher_or_canceller(spec: Spec, run_id: str, index: int, barrier: Any, results: Any) -> None:
    store = open_spec(spec)
    barrier.wait()
    if index % 2:
        outcome = store.cancel(run_id, now=at(2), reason=f"cancel {index}")
    else:
        outcome = store.finish(run_id, 1, status=RunStatus.SUCCESS, now=at(2), reason=f"finish {index}")
    results.put(None if outcome is None else outcome.status)
    store.close()


def _race(target: Any, spec: Spec, run_id: str) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=target, args=(spec, run_id, i, barrier, results)) for i in range(PROCESSES)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return outcomes


def eight_processes_claim_one_run(spec: Spec) -> None:
    """Exactly one attempt wins, and the history shows one claim."""
    store = open_spec(spec)
    run, _ = store.create_run(make_run())
    outcomes = _race(_claimer, spec, run.run_id)
    assert sorted(outcomes, key=str) == [1] + [None] * (PROCESSES - 1)
    loaded = store.get_run(run.run_id)
    assert loaded is not None
    assert loaded.attempt == 1 and [h.status for h in loaded.history].count(RunStatus.STARTED) == 1
    store.close()


def eight_processes_race_finish_and_cancel(spec: Spec) -> None:
    """Exactly one terminal state is written, counted once, and never overwritten."""
    store = open_spec(spec)
    run, _ = store.create_run(make_run())
    assert store.claim(run.run_id, now=at(1)) == 1
    outcomes = _race(_finisher_or_canceller, spec, run.run_id)
    winners = [o for o in outcomes if o is not None]
    assert len(winners) == 1
    final = store.get_run(run.run_id)
    assert final is not None and final.status == winners[0]
    assert sum(is_terminal(h.status) for h in final.history) == 1
    assert sum(store.stats().finished.values()) == 1
    assert store.cancel(run.run_id, now=at(3)) is None
    assert store.finish(run.run_id, 1, status=RunStatus.FAILURE, now=at(3)) is None
    assert store.claim(run.run_id, now=at(10_000)) is None
    assert store.get_run(run.run_id) == final
    store.close()
