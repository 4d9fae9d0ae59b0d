"""The store contract, run against every backend (SQLite, mongomock, real MongoDB)."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC

import pytest

from podflow.errors import AlreadyExists, InvalidInput, NamesMissing, ProfileNotFound
from podflow.models import (
    EpisodeProfile,
    ErrorInfo,
    Progress,
    RunResult,
    Source,
    Speaker,
    SpeakerProfile,
    WebhookDelivery,
)
from podflow.states import RunStatus
from podflow.store.base import RunFilter, Store, profile_of
from podflow.store.counters import checkpoint_counter, provider_call_counter, webhook_counter
from tests.conftest import T0, at, make_run
from tests.store.statements import count_statements

LOST = ErrorInfo(type="worker_lost", message="no heartbeat")
LATE = ErrorInfo(type="time_limit", message="over the limit")
EXPIRED = ErrorInfo(type="expired", message="never started")


def started(store: Store, now=T0, **overrides) -> tuple[str, int]:
    run, _ = store.create_run(make_run(now, **overrides))
    attempt = store.claim(run.run_id, now=now)
    assert attempt == 1
    return run.run_id, attempt


# -- records -----------------------------------------------------------------------


def test_a_created_run_reads_back_unchanged(store: Store) -> None:
    run = make_run(briefing_suffix="keep it short", idempotency_key=None)
    created, fresh = store.create_run(run)
    assert fresh and created == run
    loaded = store.get_run(run.run_id)
    assert loaded == run
    assert loaded.created_at.tzinfo is not None and loaded.created_at.utcoffset().total_seconds() == 0
    assert [h.reason for h in loaded.history] == ["created"]


def test_a_repeated_idempotency_key_returns_the_existing_run(store: Store) -> None:
    first, fresh = store.create_run(make_run(idempotency_key="k-1"))
    again, fresh_again = store.create_run(make_run(at(1), idempotency_key="k-1"))
    assert fresh and not fresh_again
    assert again.run_id == first.run_id
    other, fresh_other = store.create_run(make_run(at(2), idempotency_key="k-2"))
    assert fresh_other and other.run_id != first.run_id
    assert store.get_run_by_idempotency_key("k-1") == store.get_run(first.run_id)
    assert store.get_run_by_idempotency_key("k-2") == store.get_run(other.run_id)
    # runs without a key never collide with each other
    assert store.create_run(make_run())[1] and store.create_run(make_run())[1]


def test_concurrent_creates_with_one_idempotency_key_make_one_run(store: Store) -> None:
    results: list[str] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        run, _ = store.create_run(make_run(idempotency_key="same"))
        results.append(run.run_id)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert store.list_runs(limit=100).runs == [store.get_run(results[0])]


def test_missing_runs_read_as_none(store: Store) -> None:
    assert store.get_run("run_" + "0" * 32) is None
    assert store.get_run_by_message_id("nope") is None
    assert store.get_run_by_idempotency_key("nope") is None


def test_runs_list_newest_first_with_a_status_filter_and_a_cursor(store: Store) -> None:
    runs = [store.create_run(make_run(at(i)))[0] for i in range(5)]
    store.claim(runs[1].run_id, now=at(10))
    page = store.list_runs(limit=2)
    assert [r.run_id for r in page.runs] == [runs[4].run_id, runs[3].run_id]
    page2 = store.list_runs(limit=2, cursor=page.next_cursor)
    assert [r.run_id for r in page2.runs] == [runs[2].run_id, runs[1].run_id]
    page3 = store.list_runs(limit=2, cursor=page2.next_cursor)
    assert [r.run_id for r in page3.runs] == [runs[0].run_id] and page3.next_cursor is None
    pending = store.list_runs(status=RunStatus.PENDING, limit=10)
    assert runs[1].run_id not in {r.run_id for r in pending.runs} and len(pending.runs) == 4
    assert [r.run_id for r in store.list_runs(status=RunStatus.STARTED).runs] == [runs[1].run_id]


def test_runs_created_in_the_same_millisecond_page_without_loss(store: Store) -> None:
    ids = {store.create_run(make_run(T0))[0].run_id for _ in range(7)}
    seen, cursor = [], None
    while True:
        page = store.list_runs(limit=3, cursor=cursor)
        seen += [r.run_id for r in page.runs]
        if not (cursor := page.next_cursor):
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 7


def _ids(store: Store, **where: object) -> list[str]:
    return [r.run_id for r in store.list_runs(limit=100, where=RunFilter(**where)).runs]  # type: ignore[arg-type]


def test_runs_are_found_by_the_start_of_their_name_in_any_case_or_of_their_id(store: Store) -> None:
    weekly = store.create_run(make_run(at(0), episode_name="Weekly Digest"))[0]
    daily = store.create_run(make_run(at(1), episode_name="daily digest"))[0]
    chinese = store.create_run(make_run(at(2), episode_name="科技新闻 第一期"))[0]
    accented = store.create_run(make_run(at(3), episode_name="École Straße"))[0]
    assert _ids(store, search="weekly") == [weekly.run_id]
    assert _ids(store, search="WEEKLY dig") == [weekly.run_id]
    assert _ids(store, search="digest") == []  # the start of the name, not any word
    assert _ids(store, search="科技") == [chinese.run_id]
    assert _ids(store, search="école strasse") == [accented.run_id]  # case-folded, ß as ss
    assert _ids(store, search=daily.run_id[:14]) == [daily.run_id]
    assert _ids(store, search=daily.run_id.upper()) == [daily.run_id]
    assert set(_ids(store, search="  ")) == {weekly.run_id, daily.run_id, chinese.run_id, accented.run_id}


@pytest.mark.parametrize("probe", [50_000, 2], ids=["sorted", "walked"])
def test_a_search_pages_newest_first_whichever_way_each_index_is_read(
    store: Store, monkeypatch: pytest.MonkeyPatch, probe: int
) -> None:
    from podflow.store import listing

    monkeypatch.setattr(listing, "SEARCH_PROBE", probe)  # 2: every leg is "common", and walked
    runs = [store.create_run(make_run(at(i), episode_name=f"Run {i}" if i % 2 else f"Weekly {i}"))[0]
            for i in range(9)]  # fmt: skip
    newest_first = [r.run_id for r in reversed(runs)]
    # "run" is both a name prefix (the odd ones) and every run id's: each run once, in order
    seen, cursor = [], None
    while True:
        page = store.list_runs(limit=2, cursor=cursor, where=RunFilter(search="run"))
        seen += [r.run_id for r in page.runs]
        if not (cursor := page.next_cursor):
            break
    assert seen == newest_first
    assert _ids(store, search="weekly") == [r.run_id for r in reversed(runs) if r.episode_name.startswith("Weekly")]
    assert _ids(store, search="weekly", status=RunStatus.STARTED) == []


def test_runs_are_filtered_by_profile_error_retry_and_creation_time_and_page_as_usual(store: Store) -> None:
    runs = [
        store.create_run(make_run(at(i), episode_profile="tech_news" if i % 2 else "deep_dive"))[0] for i in range(6)
    ]
    store.create_run(make_run(at(6), episode_profile="deep_dive", speaker_profile="solo", retry_of=runs[0].run_id))
    retry = store.list_runs(limit=1).runs[0]
    odd = [r.run_id for r in reversed(runs) if int(r.episode_profile == "tech_news")]
    assert _ids(store, episode_profile="tech_news") == odd
    page = store.list_runs(limit=2, where=RunFilter(episode_profile="tech_news"))
    rest = store.list_runs(limit=2, cursor=page.next_cursor, where=RunFilter(episode_profile="tech_news"))
    assert [r.run_id for r in page.runs + rest.runs] == odd and rest.next_cursor is None
    assert _ids(store, speaker_profile="solo") == [retry.run_id]
    assert _ids(store, retry_of=runs[0].run_id) == [retry.run_id]
    assert _ids(store, created_after=at(2), created_before=at(4)) == [runs[3].run_id, runs[2].run_id]
    run_id, attempt = runs[5].run_id, store.claim(runs[5].run_id, now=at(10))
    assert attempt is not None
    store.finish(run_id, attempt, status=RunStatus.FAILURE, now=at(11), error=LOST)
    assert _ids(store, status=RunStatus.FAILURE, error_type="worker_lost") == [run_id]
    assert _ids(store, error_type="time_limit") == []
    assert store.list_runs(status=RunStatus.PENDING, where=RunFilter(episode_profile="tech_news")).runs == [
        store.get_run(runs[3].run_id),
        store.get_run(runs[1].run_id),
    ]


def test_a_malformed_cursor_is_invalid_input_naming_the_field(store: Store) -> None:
    with pytest.raises(InvalidInput) as err:
        store.list_runs(cursor="!!not-a-cursor")
    assert err.value.field == "cursor"


def test_delete_refuses_a_started_run(store: Store) -> None:
    pending, _ = store.create_run(make_run())
    run_id, _ = started(store)
    assert store.delete_run(pending.run_id) and store.get_run(pending.run_id) is None
    assert not store.delete_run(run_id) and store.get_run(run_id) is not None
    assert not store.delete_run("run_absent")


def test_counts_by_status_and_the_oldest_pending_run_asked_to_start(store: Store) -> None:
    store.create_run(make_run(at(0)))  # a draft: never asked to start
    queued, _ = store.create_run(make_run(at(5), outbox_at=at(5)))
    started(store, at(6))
    assert store.count_by_status() == {
        RunStatus.PENDING: 2,
        RunStatus.STARTED: 1,
        RunStatus.SUCCESS: 0,
        RunStatus.FAILURE: 0,
        RunStatus.REVOKED: 0,
    }
    assert store.oldest_due_pending_at(now=at(10)) == queued.created_at
    # a run scheduled ahead is not waiting until its start: then it waits from its start
    store.create_run(make_run(at(1), outbox_at=at(1), start_at=at(3600)))
    assert store.oldest_due_pending_at(now=at(10)) == queued.created_at
    assert store.oldest_due_pending_at(now=at(7200)) == queued.created_at  # created at 5: waiting longer
    store.create_run(make_run(at(2), enqueued_at=at(2), start_at=at(4)))  # due at 4, before the queued one
    assert store.oldest_due_pending_at(now=at(10)) == at(4)
    assert store.oldest_due_pending_at(now=at(3)) is None  # the queued one was made at 5, the other is due at 4


# -- claiming and fencing --------------------------------------------------------------


def test_a_pending_run_is_claimed_once(store: Store) -> None:
    run, _ = store.create_run(make_run())
    assert store.claim(run.run_id, now=at(1)) == 1
    assert store.claim(run.run_id, now=at(2)) is None  # held by a live attempt
    loaded = store.get_run(run.run_id)
    assert loaded.status is RunStatus.STARTED and loaded.attempt == 1
    assert loaded.started_at == at(1) and loaded.heartbeat_at == at(1)
    assert [(h.status, h.attempt, h.reason) for h in loaded.history] == [
        (RunStatus.PENDING, 0, "created"),
        (RunStatus.STARTED, 1, "claimed"),
    ]


def _catalog(store: Store) -> tuple[EpisodeProfile, SpeakerProfile, list[Source]]:
    episode = EpisodeProfile(name="tech_news", num_segments=2)
    speakers = SpeakerProfile(name="dual_host", speakers=[Speaker(name="Ada", voice="en-us", personality="curious")])
    store.create_profile(episode, now=T0)
    store.create_profile(speakers, now=T0)
    sources = []
    for n in (1, 2):
        text = f"source {n}"
        source = Source(
            source_id=f"src_{n}", title=f"s{n}", filename=None, content_type="text/plain", byte_size=len(text),
            sha256=hashlib.sha256(text.encode()).hexdigest(), text=text, created_at=at(n),
        )  # fmt: skip
        store.add_source(source)
        sources.append(source)
    return episode, speakers, sources


def test_a_claim_for_execution_returns_the_claimed_run_with_its_profiles_and_sources(store: Store) -> None:
    episode, speakers, sources = _catalog(store)
    run, _ = store.create_run(make_run(source_ids=["src_2", "src_1", "src_2"]))
    claimed = store.claim_execution(run.run_id, now=at(5))
    assert claimed is not None and claimed.attempt == 1
    assert claimed.run == store.get_run(run.run_id)  # the run as the claim left it
    assert claimed.run.status is RunStatus.STARTED and claimed.run.started_at == at(5)
    assert profile_of("episode", claimed.profiles["episode"]) == episode
    assert profile_of("speaker", claimed.profiles["speaker"]) == speakers
    assert list(claimed.sources) == [sources[1], sources[0]]  # the run's order, once each
    assert store.claim_execution(run.run_id, now=at(6)) is None  # held by a live attempt
    assert store.claim_execution("run_absent", now=at(6)) is None


def test_a_claim_for_execution_says_what_the_run_names_is_gone(store: Store) -> None:
    _catalog(store)
    run, _ = store.create_run(make_run(source_ids=["src_1", "src_gone"], speaker_profile="gone"))
    claimed = store.claim_execution(run.run_id, now=at(5))
    assert claimed is not None and claimed.attempt == 1  # claimed all the same: the runner fails it
    assert claimed.profiles["speaker"] is None and profile_of("episode", claimed.profiles["episode"]) is not None
    assert [s.source_id for s in claimed.sources] == ["src_1"]


def test_a_checked_insert_inserts_only_a_run_whose_profiles_and_sources_exist(store: Store) -> None:
    _catalog(store)
    for missing in ({"episode_profile": "gone"}, {"speaker_profile": "gone"}, {"source_ids": ["src_1", "src_x"]}):
        run = make_run(**missing)
        with pytest.raises(NamesMissing):
            store.create_run(run, check_names=True)
        assert store.get_run(run.run_id) is None
    named = make_run(source_ids=["src_1", "src_2", "src_1"], idempotency_key="k")
    run, created = store.create_run(named, check_names=True)
    assert created and store.get_run(run.run_id) == run
    again, created = store.create_run(make_run(at(1), source_ids=["src_1"], idempotency_key="k"), check_names=True)
    assert not created and again.run_id == run.run_id
    assert store.stats().created == 1  # the refused inserts counted nothing


def test_concurrent_claims_of_one_run_let_exactly_one_win(store: Store) -> None:
    run, _ = store.create_run(make_run())
    wins: list[int | None] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        wins.append(store.claim(run.run_id, now=at(1)))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins, key=str) == [1] + [None] * 7


def test_a_started_run_is_reclaimed_only_when_its_heartbeat_is_stale(store: Store) -> None:
    run_id, _ = started(store)
    assert store.heartbeat(run_id, 1, now=at(50)).owned
    assert store.claim(run_id, now=at(100)) is None  # last beat 50 s ago, timeout 60 s
    assert store.claim(run_id, now=at(111)) == 2
    assert store.get_run(run_id).history[-1].reason == "reclaimed: heartbeat stale"


def test_no_claim_beyond_max_attempts(store: Store) -> None:
    run_id, _ = started(store)
    assert store.claim(run_id, now=at(100)) == 2
    assert store.claim(run_id, now=at(200)) == 3
    assert store.claim(run_id, now=at(300)) is None
    assert store.get_run(run_id).attempt == 3


def test_an_attempt_released_because_its_worker_stopped_does_not_count(store: Store) -> None:
    run_id, _ = started(store)  # attempt 1 counts; the store's max_attempts is 3
    for attempt in range(2, 6):  # four stops in a row, more than max_attempts: each is claimable again at once
        assert store.release(run_id, attempt - 1, error=None, now=at(attempt), reason="stopped", counted=False)
        assert store.claim(run_id, now=at(attempt)) == attempt
    run = store.get_run(run_id)
    assert (run.attempt, run.attempts_counted) == (5, 1) and [h.reason for h in run.history].count("stopped") == 4
    # silent past the heartbeat timeout, with attempts left by count: released by the sweep, not failed
    assert store.fail_lost(heartbeat_before=at(100), error=LOST, now=at(100)) == []
    assert [ref.run_id for ref in store.release_lost(heartbeat_before=at(100), now=at(100))] == [run_id]
    assert store.claim(run_id, now=at(101)) == 6  # counted: 2
    assert store.release(run_id, 6, error=LOST, now=at(102))  # a failure: it counts
    assert store.claim(run_id, now=at(103)) == 7  # counted: 3, the last
    assert store.release(run_id, 7, error=LOST, now=at(104))
    assert store.claim(run_id, now=at(105)) is None
    assert store.get_run(run_id).attempts_counted == 3
    # a stop of an attempt that no longer owns the run gives nothing back
    assert not store.release(run_id, 6, error=None, now=at(106), counted=False)
    assert store.fail_lost(heartbeat_before=at(200), error=LOST, now=at(200)) == [run_id]


def test_a_stale_attempt_is_fenced_off_after_a_reclaim(store: Store) -> None:
    run_id, old = started(store)
    new = store.claim(run_id, now=at(100))
    assert new == 2
    lease = store.heartbeat(run_id, old, now=at(101))
    assert not lease.owned and not lease.cancelled and lease.status is RunStatus.STARTED
    assert not store.set_progress(run_id, old, Progress(stage="audio", percent=50), now=at(101)).owned
    assert store.finish(run_id, old, status=RunStatus.SUCCESS, now=at(102), result=RunResult()) is None
    assert not store.release(run_id, old, error=LOST, now=at(102))
    run = store.get_run(run_id)
    assert run.status is RunStatus.STARTED and run.attempt == 2 and run.progress is None
    # the live attempt is unaffected
    assert store.set_progress(run_id, new, Progress(stage="audio", percent=10), now=at(103)).owned
    assert store.finish(run_id, new, status=RunStatus.SUCCESS, now=at(104)) is not None


def test_progress_is_recorded_and_counts_as_a_heartbeat(store: Store) -> None:
    run_id, attempt = started(store)
    lease = store.set_progress(run_id, attempt, Progress(stage="transcript", percent=40, message="turn 4"), now=at(30))
    assert lease.owned
    run = store.get_run(run_id)
    assert run.progress == Progress(stage="transcript", percent=40, message="turn 4")
    assert run.heartbeat_at == at(30)


def test_finish_records_the_outcome_once(store: Store) -> None:
    run_id, attempt = started(store)
    result = RunResult(audio_path="podcasts/x/episode.wav", duration_s=12.5)
    done = store.finish(run_id, attempt, status=RunStatus.SUCCESS, now=at(5), result=result)
    assert done.status is RunStatus.SUCCESS and done.result == result and done.finished_at == at(5)
    assert done.history[-1].status is RunStatus.SUCCESS and done.history[-1].attempt == 1
    assert store.finish(run_id, attempt, status=RunStatus.FAILURE, now=at(6), error=LOST) is None
    assert store.get_run(run_id).status is RunStatus.SUCCESS


def test_finish_attempt_is_the_same_fenced_write_without_the_run(store: Store) -> None:
    run_id, old = started(store)
    new = store.claim(run_id, now=at(100))
    assert store.finish_attempt(run_id, old, status=RunStatus.SUCCESS, now=at(101), result=RunResult()) is False
    result = RunResult(audio_path="podcasts/x/episode.wav", duration_s=3.0)
    assert store.finish_attempt(run_id, new, status=RunStatus.SUCCESS, now=at(102), result=result) is True
    assert store.finish_attempt(run_id, new, status=RunStatus.FAILURE, now=at(103), error=LOST) is False
    run = store.get_run(run_id)
    assert run.status is RunStatus.SUCCESS and run.result == result and run.finished_at == at(102)
    last = run.history[-1]
    assert (last.status, last.attempt, last.reason) == (RunStatus.SUCCESS, 2, "success")
    assert store.stats().finished.get(RunStatus.SUCCESS) == 1  # counted as finish counts it


def test_finish_only_ends_in_success_or_failure(store: Store) -> None:
    run_id, attempt = started(store)
    with pytest.raises(ValueError):
        store.finish(run_id, attempt, status=RunStatus.REVOKED, now=at(1))


def test_a_terminal_run_is_never_overwritten(store: Store) -> None:
    run_id, attempt = started(store)
    store.finish(run_id, attempt, status=RunStatus.FAILURE, now=at(5), error=LOST)
    before = store.get_run(run_id)
    assert store.cancel(run_id, now=at(6)) is None
    assert store.claim(run_id, now=at(1000)) is None
    assert not store.heartbeat(run_id, attempt, now=at(7)).owned
    assert store.release(run_id, attempt, error=LOST, now=at(7)) is False
    assert store.request_start(run_id, message_id="m", now=at(8)) is None
    for sweep in (
        lambda: store.fail_started_before(started_before=at(10_000), error=LATE, now=at(10_000)),
        lambda: store.fail_lost(heartbeat_before=at(10_000), error=LOST, now=at(10_000)),
        lambda: store.release_lost(heartbeat_before=at(10_000), now=at(10_000)),
        lambda: store.fail_pending_enqueued_before(enqueued_before=at(10_000), error=EXPIRED, now=at(10_000)),
    ):
        assert sweep() == []
    assert store.get_run(run_id) == before


def test_cancel_revokes_pending_and_started_runs(store: Store) -> None:
    pending, _ = store.create_run(make_run())
    revoked = store.cancel(pending.run_id, now=at(1), reason="user asked")
    assert revoked.status is RunStatus.REVOKED and revoked.finished_at == at(1)
    assert revoked.history[-1].reason == "user asked" and revoked.error.type == "revoked"
    assert store.claim(pending.run_id, now=at(2)) is None

    run_id, attempt = started(store)
    assert store.cancel(run_id, now=at(3)).status is RunStatus.REVOKED
    lease = store.heartbeat(run_id, attempt, now=at(4))
    assert not lease.owned and lease.cancelled and lease.status is RunStatus.REVOKED
    assert store.finish(run_id, attempt, status=RunStatus.SUCCESS, now=at(5)) is None
    assert store.cancel(run_id, now=at(6)) is None
    assert store.cancel("run_absent", now=at(6)) is None


def test_a_released_run_is_claimable_at_once_by_the_next_attempt(store: Store) -> None:
    run_id, attempt = started(store)
    error = ErrorInfo(type="TransientGenerationError", message="rate limited")
    assert store.release(run_id, attempt, error=error, now=at(5))
    assert not store.release(run_id, attempt, error=error, now=at(5))
    released = store.get_run(run_id)
    assert released.status is RunStatus.STARTED and released.released and released.error == error
    assert not store.heartbeat(run_id, attempt, now=at(6)).owned  # gave it up
    assert store.claim(run_id, now=at(6)) == 2
    run = store.get_run(run_id)
    assert not run.released and run.history[-1].reason == "retry"


def test_a_release_that_is_no_failure_records_its_reason_and_no_error(store: Store) -> None:
    run_id, attempt = started(store, current_message_id="m1")
    assert store.release(run_id, attempt, error=None, now=at(5), reason="released: the worker stopped")
    run = store.get_run(run_id)
    assert run.released and run.error is None and run.history[-1].reason == "released: the worker stopped"
    assert run.current_message_id == "m1"  # the broker retries the same message


def test_heartbeat_many_reports_each_lease(store: Store) -> None:
    alive, a1 = started(store)
    cancelled, c1 = started(store)
    reclaimed, r1 = started(store)
    store.cancel(cancelled, now=at(1))
    store.claim(reclaimed, now=at(100))
    replies = store.heartbeat_many({alive: a1, cancelled: c1, reclaimed: r1, "run_absent": 1}, now=at(101))
    assert replies[alive].owned
    assert replies[cancelled].cancelled and not replies[cancelled].owned
    assert not replies[reclaimed].owned and not replies[reclaimed].cancelled
    assert not replies["run_absent"].owned
    assert store.get_run(alive).heartbeat_at == at(101)
    assert store.heartbeat_many({}, now=at(102)) == {}


# -- dispatch bookkeeping ----------------------------------------------------------


def test_start_is_requested_once_and_confirmed_by_mark_enqueued(store: Store) -> None:
    run, _ = store.create_run(make_run())
    requested = store.request_start(run.run_id, message_id="msg-1", now=at(1))
    assert requested.outbox_at == at(1) and requested.message_id == "msg-1"
    assert store.request_start(run.run_id, message_id="msg-2", now=at(2)) is None
    assert [r.run_id for r in store.list_outbox(requested_before=at(2))] == [run.run_id]
    assert store.mark_enqueue_failed(run.run_id, error="broker down", now=at(2))
    assert store.get_run(run.run_id).enqueue_error == "broker down"
    assert store.mark_enqueued(run.run_id, now=at(3))
    run = store.get_run(run.run_id)
    assert run.outbox_at is None and run.enqueued_at == at(3) and run.enqueue_error is None
    assert store.list_outbox(requested_before=at(100)) == []
    assert store.get_run_by_message_id("msg-1").run_id == run.run_id
    assert store.request_start(run.run_id, message_id="msg-3", now=at(4)) is None  # already enqueued
    assert not store.mark_enqueued("run_absent", now=at(4))


def test_sends_are_confirmed_many_at_once_but_only_for_the_message_sent(store: Store) -> None:
    runs = [store.create_run(make_run(outbox_at=T0, message_id=f"m{n}", current_message_id=f"m{n}"))[0]
            for n in range(4)]  # fmt: skip
    sent = {runs[0].run_id: "m0", runs[1].run_id: "m1", runs[2].run_id: "old", runs[3].run_id: None, "run_absent": "x"}
    assert store.mark_enqueued_many(sent, now=at(3)) == 3
    marked = {r.run_id: store.get_run(r.run_id) for r in runs}
    for run_id in (runs[0].run_id, runs[1].run_id, runs[3].run_id):  # None: whatever message carries it
        assert marked[run_id].outbox_at is None and marked[run_id].enqueued_at == at(3)
    # its current message is another one (re-sent since): that send is still to be confirmed
    assert marked[runs[2].run_id].outbox_at == T0 and marked[runs[2].run_id].enqueued_at is None
    assert store.mark_enqueued_many({runs[0].run_id: "m0"}, now=at(9)) == 1
    assert store.get_run(runs[0].run_id).enqueued_at == at(3)  # the first confirmation stands
    assert store.mark_enqueued_many({}, now=at(9)) == 0
    assert [r.run_id for r in store.list_outbox(requested_before=at(10))] == [runs[2].run_id]


def test_request_start_keeps_a_message_id_the_run_already_has(store: Store) -> None:
    run, _ = store.create_run(make_run(message_id="first"))
    started = store.request_start(run.run_id, message_id="second", now=at(1))
    assert (started.message_id, started.current_message_id) == ("first", "first")


def test_a_started_draft_is_carried_by_its_first_message(store: Store) -> None:
    run, _ = store.create_run(make_run())
    started = store.request_start(run.run_id, message_id="msg-1", now=at(1))
    assert (started.message_id, started.current_message_id) == ("msg-1", "msg-1")
    [ref] = store.list_outbox(requested_before=at(2))
    assert (ref.message_id, ref.current_message_id) == ("msg-1", "msg-1")


def test_the_store_has_one_identity(store: Store) -> None:
    assert len(store.store_id) == 16 and int(store.store_id, 16) >= 0


def test_a_claim_confirms_an_enqueue_that_was_never_marked(store: Store) -> None:
    run, _ = store.create_run(make_run(outbox_at=T0, message_id="m"))
    store.claim(run.run_id, now=at(1))
    loaded = store.get_run(run.run_id)
    assert loaded.outbox_at is None and loaded.enqueued_at == at(1)


# -- sweep operations ----------------------------------------------------------------


def test_fail_started_before_fails_only_runs_over_the_limit(store: Store) -> None:
    old, _ = started(store, at(0))
    young, _ = started(store, at(500))
    assert store.fail_started_before(started_before=at(100), error=LATE, now=at(600)) == [old]
    run = store.get_run(old)
    assert run.status is RunStatus.FAILURE and run.error == LATE and run.history[-1].reason == "time_limit"
    assert store.get_run(young).status is RunStatus.STARTED


def test_lost_runs_are_released_while_attempts_remain_then_failed(store: Store) -> None:
    run_id, _ = started(store)
    assert store.fail_lost(heartbeat_before=at(61), error=LOST, now=at(61)) == []
    refs = store.release_lost(heartbeat_before=at(61), now=at(61))
    assert [(r.run_id, r.attempt, r.mode) for r in refs] == [(run_id, 1, "queue")]
    assert store.release_lost(heartbeat_before=at(61), now=at(62)) == []  # heartbeat_at moved to now
    assert store.release_lost(heartbeat_before=at(500), now=at(500)) == []  # released once per loss
    run = store.get_run(run_id)
    assert run.released and run.heartbeat_at == at(61)
    assert [h.reason for h in run.history].count("lost: heartbeat stale") == 1
    assert store.claim(run_id, now=at(62)) == 2
    assert store.claim(run_id, now=at(200)) == 3  # lost again
    assert store.release_lost(heartbeat_before=at(400), now=at(400)) == []  # no attempts left
    assert store.fail_lost(heartbeat_before=at(400), error=LOST, now=at(400)) == [run_id]
    assert store.get_run(run_id).status is RunStatus.FAILURE


def test_sweep_operations_respect_their_limit(store: Store) -> None:
    ids = {started(store, at(i))[0] for i in range(5)}
    first = store.fail_started_before(started_before=at(100), error=LATE, now=at(200), limit=3)
    rest = store.fail_started_before(started_before=at(100), error=LATE, now=at(200), limit=3)
    assert len(first) == 3 and len(rest) == 2 and set(first) | set(rest) == ids


def test_pending_runs_enqueued_long_ago_expire(store: Store) -> None:
    old, _ = store.create_run(make_run(at(0), enqueued_at=at(0)))
    draft, _ = store.create_run(make_run(at(0)))
    young, _ = store.create_run(make_run(at(0), enqueued_at=at(90)))
    assert store.fail_pending_enqueued_before(enqueued_before=at(50), error=EXPIRED, now=at(100)) == [old.run_id]
    assert store.get_run(old.run_id).error == EXPIRED
    assert store.get_run(draft.run_id).status is RunStatus.PENDING
    assert store.get_run(young.run_id).status is RunStatus.PENDING


# -- sources ------------------------------------------------------------------------


def make_source(text: str, title: str = "notes") -> Source:
    from podflow.models import new_source_id

    data = text.encode()
    return Source(
        source_id=new_source_id(),
        title=title,
        filename=f"{title}.md",
        content_type="text/markdown",
        byte_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        text=text,
        created_at=T0,
    )


def test_sources_are_stored_once_per_content(store: Store) -> None:
    first, fresh = store.add_source(make_source("# Hello\nworld", "a"))
    again, fresh_again = store.add_source(make_source("# Hello\nworld", "b"))
    assert fresh and not fresh_again and again == first
    other, _ = store.add_source(make_source("different"))
    assert store.get_source(first.source_id).text == "# Hello\nworld"
    assert {s.source_id for s in store.list_sources()} == {first.source_id, other.source_id}
    assert store.missing_sources([first.source_id, "src_nope", other.source_id]) == ["src_nope"]
    assert store.missing_sources([]) == []
    assert store.delete_source(first.source_id) and not store.delete_source(first.source_id)
    assert store.get_source(first.source_id) is None


# -- profiles -----------------------------------------------------------------------


EPISODE = EpisodeProfile(name="tech_news", description="news", num_segments=3, default_briefing="Be brief.")
SPEAKERS = SpeakerProfile(
    name="dual_host",
    speakers=[
        Speaker(name="Ada", voice="en-us", personality="curious"),
        Speaker(name="Linus", voice="en-gb", personality="dry"),
    ],
)


def test_profiles_are_created_updated_listed_and_deleted(store: Store) -> None:
    store.create_profile(EPISODE, now=T0)
    store.create_profile(SPEAKERS, now=T0)
    with pytest.raises(AlreadyExists):
        store.create_profile(EPISODE, now=T0)
    edited = EPISODE.model_copy(update={"num_segments": 5})
    store.update_profile(edited, now=T0)
    assert store.get_profile("episode", "tech_news") == edited
    assert store.get_profile("speaker", "dual_host") == SPEAKERS
    assert store.get_profile("speaker", "tech_news") is None
    with pytest.raises(ProfileNotFound):
        store.update_profile(EPISODE.model_copy(update={"name": "absent"}), now=T0)
    store.create_profile(EPISODE.model_copy(update={"name": "a_first"}), now=T0)
    assert [p.name for p in store.list_profiles("episode")] == ["a_first", "tech_news"]
    assert store.delete_profile("episode", "tech_news") and not store.delete_profile("episode", "tech_news")


def test_seeding_never_overwrites_an_edit_nor_resurrects_a_deletion(store: Store) -> None:
    deep = EPISODE.model_copy(update={"name": "deep_dive"})
    assert sorted(store.seed_profiles([EPISODE, deep, SPEAKERS], now=T0)) == ["deep_dive", "dual_host", "tech_news"]
    store.update_profile(EPISODE.model_copy(update={"description": "mine"}), now=T0)
    store.delete_profile("episode", "deep_dive")
    assert store.seed_profiles([EPISODE, deep, SPEAKERS], now=T0) == []
    assert store.get_profile("episode", "tech_news").description == "mine"
    assert store.get_profile("episode", "deep_dive") is None


def test_seeding_keeps_a_user_profile_of_the_same_name(store: Store) -> None:
    mine = EPISODE.model_copy(update={"description": "made before seeding"})
    store.create_profile(mine, now=T0)
    assert store.seed_profiles([EPISODE], now=T0) == []
    assert store.get_profile("episode", "tech_news") == mine


# -- leases -------------------------------------------------------------------------


def test_a_lease_has_one_holder_until_it_expires(store: Store) -> None:
    assert store.acquire_lease("sweep", holder="a", now=T0, ttl_s=30)
    assert not store.acquire_lease("sweep", holder="b", now=at(10), ttl_s=30)
    assert store.acquire_lease("sweep", holder="a", now=at(20), ttl_s=30)  # renewal
    assert not store.acquire_lease("sweep", holder="b", now=at(40), ttl_s=30)
    assert store.acquire_lease("sweep", holder="b", now=at(50), ttl_s=30)  # a's expired
    store.release_lease("sweep", holder="a")  # not a's any more: no effect
    assert not store.acquire_lease("sweep", holder="a", now=at(51), ttl_s=30)
    store.release_lease("sweep", holder="b")
    assert store.acquire_lease("sweep", holder="a", now=at(52), ttl_s=30)


def test_timestamps_come_back_as_aware_utc(store: Store) -> None:
    run_id, attempt = started(store)
    store.finish(run_id, attempt, status=RunStatus.SUCCESS, now=at(1))
    run = store.get_run(run_id)
    for value in (run.created_at, run.started_at, run.finished_at, run.heartbeat_at, *(h.at for h in run.history)):
        assert value.tzinfo is not None and value.astimezone(UTC) == value


def test_a_lease_read_tells_the_owner_apart_without_writing(store: Store) -> None:
    run_id, attempt = started(store)
    assert store.lease(run_id, attempt).owned
    assert store.get_run(run_id).heartbeat_at == T0  # a read, not a heartbeat
    assert not store.lease(run_id, attempt + 1).owned
    cancelled, c1 = started(store)
    store.cancel(cancelled, now=at(1))
    assert store.lease(cancelled, c1).cancelled and not store.lease(cancelled, c1).owned
    store.release(run_id, attempt, error=LOST, now=at(2))
    assert not store.lease(run_id, attempt).owned
    assert store.lease("run_absent", 1) == store.heartbeat("run_absent", 1, now=at(3))


# -- monitoring: counters, sweeps, throughput ---------------------------------------


def test_counters_start_at_zero(store: Store) -> None:
    stats = store.stats()
    assert stats.created == 0 and stats.sweeps == 0 and stats.last_sweep_at is None
    assert stats.finished == {RunStatus.SUCCESS: 0, RunStatus.FAILURE: 0, RunStatus.REVOKED: 0}
    assert stats.failed == {} and all(d.count == 0 for d in stats.durations.values())


def test_counters_count_created_and_finished_runs_by_status_and_error_type(store: Store) -> None:
    ok, attempt = started(store, at(0))
    store.finish(ok, attempt, status=RunStatus.SUCCESS, now=at(45))
    bad, attempt = started(store, at(0))
    store.finish(bad, attempt, status=RunStatus.FAILURE, now=at(2), error=ErrorInfo(type="ValueError", message="x"))
    store.cancel(store.create_run(make_run())[0].run_id, now=at(3))  # never started: no duration
    store.create_run(make_run(idempotency_key="k"))
    store.create_run(make_run(idempotency_key="k"))  # a replay inserts nothing
    late, _ = started(store, at(0))
    store.fail_started_before(started_before=at(100), error=LATE, now=at(4000))
    store.create_run(make_run(enqueued_at=at(0)))
    store.fail_pending_enqueued_before(enqueued_before=at(50), error=EXPIRED, now=at(4000))

    stats = store.stats()
    assert stats.created == 6
    assert stats.finished == {RunStatus.SUCCESS: 1, RunStatus.FAILURE: 3, RunStatus.REVOKED: 1}
    assert stats.failed == {"ValueError": 1, "expired": 1, "time_limit": 1}
    success, failure, revoked = (stats.durations[s] for s in (RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.REVOKED))
    assert (success.count, success.sum_s) == (1, 45.0)
    buckets = dict(success.buckets)  # cumulative: runs that took at most <bound> s
    assert (buckets[30.0], buckets[60.0], buckets[float("inf")]) == (0, 1, 1)
    assert (failure.count, failure.sum_s) == (2, 4002.0)  # the expired run never started
    buckets = dict(failure.buckets)
    assert (buckets[1.0], buckets[5.0], buckets[3600.0], buckets[7200.0]) == (0, 1, 1, 2)
    assert revoked.count == 0
    assert store.get_run(late).status is RunStatus.FAILURE


def test_counters_never_go_backwards_when_runs_are_deleted(store: Store) -> None:
    run_id, attempt = started(store)
    store.finish(run_id, attempt, status=RunStatus.SUCCESS, now=at(5))
    before = store.stats()
    assert store.delete_run(run_id)
    assert store.stats() == before
    assert store.count_by_status()[RunStatus.SUCCESS] == 0


def _ended(store: Store, status: RunStatus, finished: float) -> str:
    """A run that reached ``status`` at ``at(finished)``."""
    if status is RunStatus.REVOKED:
        run, _ = store.create_run(make_run(at(finished - 10)))
        store.cancel(run.run_id, now=at(finished))
        return run.run_id
    run_id, attempt = started(store, at(finished - 10))
    store.finish(run_id, attempt, status=status, now=at(finished))
    return run_id


def test_only_ended_runs_finished_before_the_cutoff_are_listed_for_retention_oldest_first(store: Store) -> None:
    old = [_ended(store, status, 100 + i) for i, status in enumerate(
        [RunStatus.FAILURE, RunStatus.SUCCESS, RunStatus.REVOKED])]  # fmt: skip
    recent = _ended(store, RunStatus.SUCCESS, 5000)
    at_cutoff = _ended(store, RunStatus.SUCCESS, 1000)
    pending, _ = store.create_run(make_run(at(0)))
    running, _ = started(store, at(0))
    released, attempt = started(store, at(0))
    store.release(released, attempt, error=LOST, now=at(1))
    assert store.list_ended_before(finished_before=at(1000)) == old  # the cutoff is exclusive
    assert store.list_ended_before(finished_before=at(1000), limit=2) == old[:2]
    live = {pending.run_id, running, released}
    assert not live & set(store.list_ended_before(finished_before=at(10**6)))
    assert {recent, at_cutoff} <= set(store.list_ended_before(finished_before=at(10**6)))


def test_delete_ended_deletes_only_terminal_runs_and_leaves_the_counters(store: Store) -> None:
    ended = [_ended(store, status, 100) for status in (RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.REVOKED)]
    pending, _ = store.create_run(make_run(at(0)))
    running, _ = started(store, at(0))
    before = store.stats()
    absent = "run_" + "0" * 32
    assert sorted(store.delete_ended([*ended, pending.run_id, running, absent])) == sorted(ended)
    assert all(store.get_run(run_id) is None for run_id in ended)
    assert store.get_run(pending.run_id) is not None and store.get_run(running) is not None
    assert store.stats() == before  # runs ever created and finished stay counted
    assert store.delete_ended(ended) == [] and store.delete_ended([]) == []
    assert store.list_ended_before(finished_before=at(10**6)) == []


def test_a_claim_a_release_and_a_refused_write_count_nothing(store: Store) -> None:
    run_id, attempt = started(store)
    store.release(run_id, attempt, error=LOST, now=at(1))
    assert store.claim(run_id, now=at(2)) == 2
    assert store.finish(run_id, attempt, status=RunStatus.SUCCESS, now=at(3)) is None  # a stale attempt
    assert store.stats().finished[RunStatus.SUCCESS] == 0
    store.finish(run_id, 2, status=RunStatus.SUCCESS, now=at(3))
    assert store.cancel(run_id, now=at(4)) is None
    stats = store.stats()
    assert stats.created == 1 and sum(stats.finished.values()) == 1
    assert stats.durations[RunStatus.SUCCESS].sum_s == 1.0  # since the current attempt started


def test_sweeps_are_summed_and_the_latest_sweep_time_is_kept(store: Store) -> None:
    store.record_sweep({"time_limit": 2, "worker_lost": 0, "redispatched": 1, "enqueued": 0, "expired": 0}, now=at(60))
    store.record_sweep({"time_limit": 1, "send_errors": 3, "total": 99}, now=at(30))  # late, and extra keys
    stats = store.stats()
    assert stats.sweeps == 2 and stats.last_sweep_at == at(60)
    assert stats.swept == {
        "time_limit": 3,
        "worker_lost": 0,
        "redispatched": 1,
        "enqueued": 0,
        "requeued": 0,
        "expired": 0,
        "checkpoints": 0,
        "deleted": 0,
        "send_errors": 3,
    }
    store.record_sweep({}, now=at(90))
    assert store.stats().last_sweep_at == at(90) and store.stats().sweeps == 3


def test_counts_from_the_workers_are_added_and_read_back_by_stage_and_outcome(store: Store) -> None:
    store.add_counts({checkpoint_counter("audio", "reused"): 171, checkpoint_counter("audio", "computed"): 9})
    store.add_counts({checkpoint_counter("audio", "computed"): 1, provider_call_counter("tts", "429"): 2})
    store.add_counts({provider_call_counter("llm", "ok"): 0})  # nothing to add: nothing written
    store.add_counts({})
    stats = store.stats()
    assert stats.checkpoints == {("audio", "computed"): 10, ("audio", "reused"): 171}
    assert stats.provider_calls == {("tts", "429"): 2}
    assert stats.created == 0 and stats.sweeps == 0  # the run and sweep counters are apart


def test_runs_finished_are_counted_per_minute_and_status_since_a_time(store: Store) -> None:
    def finish_at(seconds: float, status: RunStatus) -> None:
        run_id, attempt = started(store, at(0))
        store.finish(run_id, attempt, status=status, now=at(seconds))

    finish_at(10, RunStatus.SUCCESS)  # before the window
    finish_at(65, RunStatus.SUCCESS)
    finish_at(119.999, RunStatus.SUCCESS)
    finish_at(100, RunStatus.FAILURE)
    finish_at(180, RunStatus.SUCCESS)
    store.cancel(store.create_run(make_run())[0].run_id, now=at(181))
    started(store, at(0))  # running: not finished
    minutes = store.finished_per_minute(since=at(60))
    assert [(m.minute, m.status, m.count) for m in minutes] == [
        (at(60), RunStatus.FAILURE, 1),
        (at(60), RunStatus.SUCCESS, 2),
        (at(180), RunStatus.REVOKED, 1),
        (at(180), RunStatus.SUCCESS, 1),
    ]
    assert store.finished_per_minute(since=at(1000)) == []


def test_enqueued_pending_runs_are_listed_oldest_first(store: Store) -> None:
    young, _ = store.create_run(make_run(at(0), enqueued_at=at(90)))
    old, _ = store.create_run(make_run(at(0), enqueued_at=at(10)))
    older, _ = store.create_run(make_run(at(0), enqueued_at=at(5)))
    store.create_run(make_run(at(0)))  # a draft, never enqueued
    claimed, _ = store.create_run(make_run(at(0), enqueued_at=at(1)))
    store.claim(claimed.run_id, now=at(2))

    def waiting(before: float, limit: int = 1000) -> list[str]:
        return [r.run_id for r in store.list_awaiting(status=RunStatus.PENDING, before=at(before), limit=limit)]

    assert waiting(50) == [older.run_id, old.run_id]
    assert waiting(50, limit=1) == [older.run_id]
    assert young.run_id in waiting(100)


def test_runs_waiting_for_their_message_are_listed_by_status_in_pages(store: Store) -> None:
    def add(**fields: object) -> str:
        run, _ = store.create_run(make_run(at(0), **fields))
        return run.run_id

    # created in one millisecond: the pages turn on run_id
    pending = {add(enqueued_at=at(5), message_id=f"p{i}", current_message_id=f"c{i}") for i in range(3)}
    add(enqueued_at=at(5), outbox_at=at(6))  # being sent again: in the outbox
    add(enqueued_at=at(50))  # enqueued after the cutoff
    add()  # a draft
    released, attempt = started(store, at(0), current_message_id="cr")
    store.release(released, attempt, error=None, now=at(10))
    held, _ = started(store, at(0))
    late, late_attempt = started(store, at(0))
    store.release(late, late_attempt, error=None, now=at(60))  # released after the cutoff

    pages, after = [], None
    while page := store.list_awaiting(status=RunStatus.PENDING, before=at(20), after=after, limit=2):
        pages.append(page)
        after = (page[-1].waiting_since, page[-1].run_id)
    assert [len(p) for p in pages] == [2, 1]
    refs = [ref for page in pages for ref in page]
    assert {r.run_id for r in refs} == pending and len(refs) == 3
    assert {r.current_message_id for r in refs} == {"c0", "c1", "c2"} and refs[0].waiting_since == at(5)
    [ref] = store.list_awaiting(status=RunStatus.STARTED, before=at(20))
    assert (ref.run_id, ref.current_message_id, ref.attempt) == (released, "cr", 1)
    assert held not in {r.run_id for r in store.list_awaiting(status=RunStatus.STARTED, before=at(100))}


def test_a_run_whose_message_was_lost_goes_back_to_the_outbox_under_a_new_id(store: Store) -> None:
    run, _ = store.create_run(make_run(at(0), enqueued_at=at(1), message_id="m1", current_message_id="m1"))
    assert store.redispatch(run.run_id, message_id="m2", now=at(30), reason="re-sent: the broker lost its message")
    again = store.get_run(run.run_id)
    assert (again.message_id, again.current_message_id) == ("m1", "m2")  # GET /tasks/m1 still finds it
    assert again.outbox_at == at(30) and again.enqueued_at is None and again.status is RunStatus.PENDING
    assert again.history[-1].reason == "re-sent: the broker lost its message"
    assert not store.redispatch(run.run_id, message_id="m3", now=at(31), reason="twice")  # in the outbox now
    assert [(r.run_id, r.current_message_id) for r in store.list_outbox(requested_before=at(31))] == [
        (run.run_id, "m2")
    ]
    store.mark_enqueued(run.run_id, now=at(32))
    assert store.get_run(run.run_id).enqueued_at == at(32)  # expiry counts from the new message
    assert store.claim(run.run_id, now=at(33)) == 1
    assert not store.redispatch(run.run_id, message_id="m4", now=at(34), reason="claimed")


# -- priorities and scheduled runs ----------------------------------------------------


def test_a_run_keeps_its_band_and_start_and_every_sweep_ref_carries_them(store: Store) -> None:
    """What the sweep re-sends with: the band and the start, from every query that
    returns refs (the outbox, the runs waiting for a message, the released ones)."""
    start = at(3600)
    queued, _ = store.create_run(make_run(at(0), priority="high", start_at=start, outbox_at=at(0), message_id="m1"))
    assert (store.get_run(queued.run_id).priority, store.get_run(queued.run_id).start_at) == ("high", start)
    [ref] = store.list_outbox(requested_before=at(1))
    assert (ref.run_id, ref.priority, ref.start_at) == (queued.run_id, "high", start)
    store.mark_enqueued(queued.run_id, now=at(1))
    [ref] = store.list_awaiting(status=RunStatus.PENDING, before=at(10))
    assert (ref.priority, ref.start_at) == ("high", start)
    low, _ = store.create_run(make_run(at(0), priority="low", enqueued_at=at(0)))
    assert store.claim(low.run_id, now=at(1)) == 1
    [lost] = store.release_lost(heartbeat_before=at(100), now=at(100))
    assert (lost.run_id, lost.priority, lost.start_at) == (low.run_id, "low", None)
    listed = {r.run_id: (r.priority, r.start_at) for r in store.list_runs().runs}
    assert listed == {queued.run_id: ("high", start), low.run_id: ("low", None)}


def test_a_scheduled_run_expires_only_a_pending_timeout_after_its_start(store: Store) -> None:
    # both sent at 0, one to start at 1000: waiting until then is no delay
    scheduled, _ = store.create_run(make_run(at(0), enqueued_at=at(0), start_at=at(1000)))
    unscheduled, _ = store.create_run(make_run(at(0), enqueued_at=at(0)))
    cutoff = at(500)  # now = 500 + PENDING_TIMEOUT
    assert store.fail_pending_enqueued_before(enqueued_before=cutoff, error=EXPIRED, now=at(600)) == [
        unscheduled.run_id
    ]
    assert store.get_run(scheduled.run_id).status is RunStatus.PENDING
    assert store.fail_pending_enqueued_before(enqueued_before=at(1001), error=EXPIRED, now=at(1100)) == [
        scheduled.run_id
    ]


def test_a_scheduled_run_is_cancelled_before_it_starts_and_never_claimed(store: Store) -> None:
    run, _ = store.create_run(make_run(at(0), enqueued_at=at(0), start_at=at(60)))
    assert store.cancel(run.run_id, now=at(10), reason="cancelled") is not None
    assert store.claim(run.run_id, now=at(60)) is None
    assert store.get_run(run.run_id).status is RunStatus.REVOKED


# -- batched heartbeats and progress ---------------------------------------------


def test_heartbeat_many_records_each_runs_progress_fenced_by_its_attempt(store: Store) -> None:
    reporting, a1 = started(store)
    quiet, q1 = started(store)
    zombie, z1 = started(store)
    assert store.set_progress(quiet, q1, Progress(stage="outline", percent=10.0), now=at(1)).owned
    store.claim(zombie, now=at(100))  # attempt 2 holds it now: attempt 1 is a zombie
    progress = {
        reporting: Progress(stage="script", percent=40.0, message="turn 4"),
        zombie: Progress(stage="late", percent=99.0),
        "run_unheld": Progress(stage="ignored", percent=1.0),  # not in leases: ignored
    }
    replies = store.heartbeat_many({reporting: a1, quiet: q1, zombie: z1}, now=at(101), progress=progress)
    assert replies[reporting].owned and replies[quiet].owned
    assert not replies[zombie].owned and not replies[zombie].cancelled
    run = store.get_run(reporting)
    assert run.progress == progress[reporting] and run.heartbeat_at == at(101) and run.updated_at == at(101)
    kept = store.get_run(quiet)  # a beat without progress keeps the last one, and updated_at
    assert kept.progress == Progress(stage="outline", percent=10.0)
    assert kept.heartbeat_at == at(101) and kept.updated_at == at(1)
    assert store.get_run(zombie).progress is None  # the new attempt's, untouched
    assert store.get_run(zombie).heartbeat_at == at(100)


def test_one_heartbeat_round_for_100_runs_is_a_bounded_number_of_statements(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = dict(started(store) for _ in range(100))
    lost = list(held)[:3]
    for run_id in lost[:2]:
        store.cancel(run_id, now=at(1))
    store.claim(lost[2], now=at(100))
    progress = {run_id: Progress(stage="script", percent=float(i)) for i, run_id in enumerate(list(held)[::2])}
    with count_statements(store, monkeypatch) as statements:
        replies = store.heartbeat_many(held, now=at(101), progress=progress)
    # one batched write, and one read of the leases it missed (MongoDB reads them all)
    assert len(statements) <= 2, statements
    assert {run_id for run_id, lease in replies.items() if not lease.owned} == set(lost)
    assert all(replies[run_id].cancelled for run_id in lost[:2])
    owned = [run_id for run_id in held if run_id not in lost]
    assert all(store.get_run(run_id).heartbeat_at == at(101) for run_id in owned)
    assert all(store.get_run(run_id).progress == p for run_id, p in progress.items() if run_id not in lost)


def test_get_runs_reads_many_runs_at_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = [store.create_run(make_run(at(i)))[0] for i in range(30)]
    wanted = [run.run_id for run in runs[::3]] + ["run_absent"]
    with count_statements(store, monkeypatch) as statements:
        found = store.get_runs(wanted)
    assert len(statements) == 1
    assert found == {run.run_id: run for run in runs[::3]}
    assert store.get_runs([]) == {}


# -- completion webhooks -------------------------------------------------------------

HOOK = "http://127.0.0.1:9/hook"


def _retrying(now, status=500) -> WebhookDelivery:
    return WebhookDelivery(outcome="retrying", last_attempt_at=now, last_status=status, reply_excerpt="no")


def test_a_finished_run_with_a_callback_owes_its_webhook_and_one_without_owes_none(store: Store) -> None:
    hooked, attempt = started(store, callback_url=HOOK)
    done = store.finish(hooked, attempt, status=RunStatus.SUCCESS, now=at(5))
    assert done.webhook_due_at == at(5) and done.webhook_attempts == 0 and done.webhook is None
    plain, attempt = started(store)
    assert store.finish(plain, attempt, status=RunStatus.SUCCESS, now=at(5)).webhook_due_at is None
    pending, _ = store.create_run(make_run(callback_url=HOOK))
    claimed = {run.run_id for run in store.claim_webhooks(now=at(100), lease_until=at(140))}
    assert claimed == {hooked} and store.get_run(pending.run_id).webhook_due_at is None  # not ended: owes nothing yet
    assert store.cancel(pending.run_id, now=at(200)).webhook_due_at == at(200)


def test_a_due_webhook_is_claimed_once_under_a_lease_and_again_when_the_lease_runs_out(store: Store) -> None:
    run_id, attempt = started(store, callback_url=HOOK)
    store.finish(run_id, attempt, status=RunStatus.FAILURE, now=at(5), error=LOST)
    assert store.claim_webhooks(now=at(5), lease_until=at(45)) == []  # due at 5: not before it
    (claimed,) = store.claim_webhooks(now=at(6), lease_until=at(46))
    assert claimed.run_id == run_id and claimed.webhook_attempts == 1 and claimed.webhook_due_at == at(46)
    assert claimed.status is RunStatus.FAILURE and claimed.callback_url == HOOK
    assert store.claim_webhooks(now=at(45), lease_until=at(85)) == []  # leased
    # the deliverer died after its POST: the next claim is a second attempt
    (again,) = store.claim_webhooks(now=at(47), lease_until=at(87))
    assert again.webhook_attempts == 2
    assert not store.record_webhook(run_id, 1, delivery=_retrying(at(48)), next_at=at(53))  # overtaken
    assert store.record_webhook(run_id, 2, delivery=_retrying(at(48)), next_at=at(53))
    run = store.get_run(run_id)
    assert run.webhook_due_at == at(53) and run.webhook == _retrying(at(48)) and run.webhook_attempts == 2
    assert store.claim_webhooks(now=at(52), lease_until=at(92)) == []
    assert [r.webhook_attempts for r in store.claim_webhooks(now=at(54), lease_until=at(94))] == [3]
    delivered = WebhookDelivery(outcome="delivered", last_attempt_at=at(55), last_status=200, delivered_at=at(55))
    assert store.record_webhook(run_id, 3, delivery=delivered, next_at=None)
    assert store.claim_webhooks(now=at(100_000), lease_until=at(100_040)) == []  # never re-sent
    run = store.get_run(run_id)
    assert run.webhook == delivered and run.webhook_due_at is None and run.webhook_attempts == 3
    assert store.record_webhook("run_absent", 1, delivery=delivered, next_at=None) is False


def test_concurrent_webhook_claims_take_each_delivery_once(store: Store) -> None:
    due = set()
    for _ in range(12):
        run_id, attempt = started(store, callback_url=HOOK)
        store.finish(run_id, attempt, status=RunStatus.SUCCESS, now=at(5))
        due.add(run_id)
    taken: list[str] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        while batch := store.claim_webhooks(now=at(6), lease_until=at(46), limit=2):
            taken.extend(run.run_id for run in batch)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(due)


def test_webhook_outcomes_are_counted(store: Store) -> None:
    store.add_counts({webhook_counter("delivered"): 2, webhook_counter("retried"): 3})
    assert store.stats().webhooks == {"delivered": 2, "retried": 3, "expired": 0}


def test_retention_keeps_an_ended_run_until_its_webhook_is_delivered(store: Store) -> None:
    run_id, attempt = started(store, at(0), callback_url=HOOK)
    store.finish(run_id, attempt, status=RunStatus.SUCCESS, now=at(10))
    assert store.list_ended_before(finished_before=at(10**6)) == []  # its webhook is due
    assert store.delete_ended([run_id]) == [] and store.get_run(run_id) is not None
    (claimed,) = store.claim_webhooks(now=at(11), lease_until=at(51))
    delivered = WebhookDelivery(outcome="delivered", last_attempt_at=at(12), last_status=200, delivered_at=at(12))
    assert store.record_webhook(run_id, claimed.webhook_attempts, delivery=delivered, next_at=None)
    assert store.list_ended_before(finished_before=at(10**6)) == [run_id]
    assert store.delete_ended([run_id]) == [run_id]
