"""The scale-out deployment, run: two worker hosts, one Redis, one PostgreSQL.

Two Linux network namespaces are the worker hosts, each running ``dramatiq
podflow.actors`` (2 processes x 2 threads) and reaching, over its own veth link,
a redis-server and a PostgreSQL in the root namespace, where the API and the
scheduler run. PostgreSQL is a private server this test starts (``initdb``,
listening on the root side of both links): the machine's own listens on
127.0.0.1 only. Audio goes to one PODFLOW_DATA_DIR every host sees (here, the
same filesystem; in production a shared volume).

50 runs are submitted through the API. Mid-run, every process of host A is
SIGKILLed (and A's workers started again, as systemd would); later host B's
link is cut for longer than the heartbeat timeout, then restored. Then every
run must end SUCCESS, none lost, no run executed by two attempts at once, and
the attempts B was running when it was cut off write nothing afterwards.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from podflow.states import RunStatus
from podflow.store.postgres import PostgresStore
from podflow.sweep import RESENT_REASON
from tests.deploy.hosts import Host, PrivatePostgres, can_build_hosts, subnet_base
from tests.execution import ROOT, WorkerProcess, request, seed, wait_for, worker_env
from tests.generators import read_events
from tests.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

RUNS = 50
RUN_S = 2.0
HEARTBEAT_TIMEOUT_S = 1.5
CUT_S = 4.0  # > HEARTBEAT_TIMEOUT_S: the sweep hands B's runs to other attempts meanwhile
#: what the sweep and claims write into a run's history (not the executing attempt)
NOT_BY_THE_ATTEMPT = {"claimed", "retry", "reclaimed: heartbeat stale", "lost: heartbeat stale", RESENT_REASON}
#: the figures, for the README's "Scaling out" (printed with -s)
FIGURES: dict[str, object] = {}


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[dict[str, object]]:
    reason = can_build_hosts()
    if reason:
        pytest.skip(reason)
    hosts = [Host("a", 0), Host("b", 1)]
    pg: PrivatePostgres | None = None
    redis: subprocess.Popen[bytes] | None = None
    services: list[WorkerProcess] = []
    try:
        for host in hosts:
            host.create()
        pg = PrivatePostgres(
            port=free_port(), listen=[h.root_ip for h in hosts], trust=[f"{subnet_base()}.0/24"]
        ).start()
        redis_port = free_port()
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", *(h.root_ip for h in hosts),
             "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        )
        store = seed(PostgresStore(pg.url(), heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S, max_attempts=5))

        def env(address: str, **extra: str) -> dict[str, str]:
            return worker_env(
                data_dir=tmp_path,
                broker_url=f"redis://{address}:{redis_port}/0",
                PODFLOW_STORE_URL=pg.url(address),  # type: ignore[union-attr]
                PODFLOW_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT_S),
                PODFLOW_MAX_ATTEMPTS="5",
                PODFLOW_TTS="none",
                **extra,
            )

        api_port = free_port()
        podflow = str(Path(sys.executable).parent / "podflow")
        api = WorkerProcess(env("127.0.0.1", PODFLOW_API_PORT=str(api_port)), tmp_path / "api.log", [podflow, "api"])
        scheduler = WorkerProcess(
            env("127.0.0.1", PODFLOW_SWEEP_INTERVAL="0.5"),
            tmp_path / "scheduler.log",
            [sys.executable, "-m", "scheduler"],
        )
        services += [api.start(ready=False), scheduler.start(ready=False)]
        base = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: _answers(f"{base}/healthz"), timeout=30, what="the API")
        dramatiq = [str(Path(sys.executable).parent / "dramatiq"), "podflow.actors"]
        dramatiq += ["--processes", "2", "--threads", "2"]

        def start_workers(host: Host) -> None:
            log = tmp_path / f"host-{host.tag}.log"
            host.start(dramatiq, env=env(host.root_ip, PODFLOW_TEST_HOST=host.tag), log=log, cwd=ROOT)
            wait_for(lambda: log.read_text(errors="replace").count("ready for action") >= 1, timeout=30,
                     what=f"host {host.tag}'s workers")

        for host in hosts:
            start_workers(host)
        yield {"hosts": hosts, "store": store, "api": base, "events": tmp_path / "events.jsonl",
               "start_workers": start_workers, "logs": tmp_path}
        store.close()
    finally:
        for host in hosts:
            host.remove()
        for service in services:
            service.stop()
        if redis is not None:
            redis.kill()
            redis.wait(10)
        if pg is not None:
            pg.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _running_on(events: Path, host: str) -> set[tuple[str, int]]:
    """(run_id, attempt) that started on ``host`` and have not ended."""
    started: set[tuple[str, int]] = set()
    for e in read_events(events):
        key = (str(e["run_id"]), int(e["attempt"]))  # type: ignore[call-overload]
        if e["host"] == host and e["event"] == "start":
            started.add(key)
        elif e["event"] in ("end", "interrupted"):
            started.discard(key)
    return started


def test_two_hosts_lose_nothing_through_a_kill_and_a_network_cut(deployment: dict[str, object]) -> None:
    host_a, host_b = deployment["hosts"]  # type: ignore[misc]
    store: PostgresStore = deployment["store"]  # type: ignore[assignment]
    events: Path = deployment["events"]  # type: ignore[assignment]
    began = time.time()
    body = request(f"slow:{RUN_S}").model_dump(mode="json")
    with httpx.Client(base_url=str(deployment["api"]), timeout=10) as client:
        run_ids = [client.post("/api/podcast/generate", json=body).json()["run_id"] for _ in range(RUNS)]
    assert len(set(run_ids)) == RUNS

    # host A loses power mid-run, and comes back
    wait_for(lambda: len(_running_on(events, "a")) >= 2, timeout=30, what="runs in flight on host A")
    killed_at = time.time()
    assert host_a.kill_all() > 0
    # read after the kill: an attempt that started between a look before it and the kill
    # is killed too, and nothing on host A writes an event once it is dead
    killed = _running_on(events, "a")
    deployment["start_workers"](host_a)  # type: ignore[operator]

    # host B is cut off for longer than the heartbeat timeout
    wait_for(lambda: len(_running_on(events, "b")) >= 2, timeout=30, what="runs in flight on host B")
    cut_off = _running_on(events, "b")
    cut_at = time.time()
    host_b.cut()
    time.sleep(CUT_S)
    host_b.restore()
    restored_at = time.time()

    def all_terminal() -> bool:
        return all((r := store.get_run(run_id)) is not None and r.is_terminal for run_id in run_ids)

    wait_for(all_terminal, timeout=180, interval=0.5, what="every run to end")
    ended_at = time.time()
    runs = [store.get_run(run_id) for run_id in run_ids]

    # none lost: every run ended, in success, once
    assert Counter(r.status for r in runs if r) == {RunStatus.SUCCESS: RUNS}
    for run in runs:
        assert run is not None and sum(h.status is RunStatus.SUCCESS for h in run.history) == 1

    # no run executed by two attempts at once: each attempt's [start, end] (a killed
    # attempt ends at the kill) is over before the next attempt of its run starts
    spans: dict[str, dict[int, list[float]]] = {}
    for e in read_events(events):
        span = spans.setdefault(str(e["run_id"]), {}).setdefault(int(e["attempt"]), [float(e["t"]), 0.0])  # type: ignore[call-overload]
        if e["event"] in ("end", "interrupted"):
            span[1] = float(e["t"])  # type: ignore[arg-type]
    for run_id, attempt in killed:
        spans[run_id][attempt][1] = killed_at
    for run_id, attempts in spans.items():
        ordered = sorted(attempts.items())
        for (a, (_, end)), (b, (start, _)) in itertools.pairwise(ordered):
            assert end and end < start, f"{run_id}: attempt {a} ran until {end}, attempt {b} began at {start}"

    # the cut-off host's attempts wrote nothing once cut: no history entry of theirs after
    # the cut but the sweep's, no result of theirs, and each gave its run up (LeaseLost)
    zombies = {key for key in cut_off if key[1] != store.get_run(key[0]).attempt}  # type: ignore[union-attr]
    assert zombies, "host B was running nothing when cut off"
    lost = {(str(e["run_id"]), int(e["attempt"])) for e in read_events(events) if e["event"] == "interrupted"}  # type: ignore[call-overload]
    # a generator that ended on its own before its lease ran out (progress is written by
    # the heartbeat thread, so nothing in it waits for the store) had its outcome refused
    ended_in_time = {
        (str(e["run_id"]), int(e["attempt"]))  # type: ignore[call-overload]
        for e in read_events(events)
        if e["event"] == "end" and float(e["t"]) < cut_at + HEARTBEAT_TIMEOUT_S  # type: ignore[arg-type]
    }
    for run_id, attempt in zombies:
        run = store.get_run(run_id)
        assert run is not None and run.attempt > attempt
        late = [h for h in run.history if h.attempt == attempt and h.at.timestamp() > cut_at]
        assert all(h.reason in NOT_BY_THE_ATTEMPT for h in late), late
        assert (run_id, attempt) in lost or (run_id, attempt) in ended_in_time  # gave it up once its lease ran out

    attempts = Counter(r.attempt for r in runs if r)
    FIGURES.update(
        runs=RUNS, run_s=RUN_S, wall_s=round(ended_at - began, 1), killed_on_a=len(killed),
        cut_off_on_b=len(cut_off), cut_s=round(restored_at - cut_at, 1),
        attempts=dict(sorted(attempts.items())),
        redispatched=sum(h.reason == "lost: heartbeat stale" for r in runs if r for h in r.history),
    )
    print("two-host figures:", json.dumps(FIGURES))
