"""Where a run's message is on a real redis-server: kept under its id, looked up, requeued, heartbeats left."""

from __future__ import annotations

import time

import redis
from dramatiq import Message

from podflow.dispatch.queue import QueueDispatcher
from podflow.models import RunRef
from podflow.settings import load_settings
from podflow.worker.broker import QUEUE_NAME, STORE_OPTION, build_broker
from podflow.worker.messages import RedisBroker, held_messages, leave_heartbeats


def broker_for(url: str, **settings: object) -> RedisBroker:
    broker = build_broker(load_settings(env_file=None, broker_url=url, **settings))
    assert isinstance(broker, RedisBroker)
    broker.declare_queue(QUEUE_NAME)
    return broker


def fetch(broker: RedisBroker, queue: str = QUEUE_NAME) -> Message[object]:
    """What a worker's consumer does: the message leaves the list for this broker's acks set."""
    [data] = broker.do_fetch(queue, 1)
    return Message.decode(data)


def ref(run_id: str, message_id: str | None) -> RunRef:
    return RunRef(run_id=run_id, attempt=0, mode="queue", current_message_id=message_id)


def names(client: redis.Redis, key: str) -> list[str]:
    return [name.decode() for name in client.hkeys(key)]


def test_each_copy_of_a_message_is_named_after_it_through_a_retry_and_a_delay(redis_url: str) -> None:
    broker = broker_for(redis_url)
    client: redis.Redis = broker.client
    QueueDispatcher(broker=broker).send("run_a", "msg-a", store_id="0123456789abcdef")
    [first] = names(client, f"dramatiq:{QUEUE_NAME}.msgs")
    assert first.startswith("msg-a/")
    message = fetch(broker)
    assert message.options[STORE_OPTION] == "0123456789abcdef" and message.options["redis_message_id"] == first
    assert held_messages(broker, QUEUE_NAME, ["msg-a", "msg-b"]) == {"msg-a"}  # fetched, not yet acked
    # a retry, as Dramatiq's Retries middleware makes it: the delayed copy first, then the ack
    broker.enqueue(message, delay=60_000)
    broker.do_ack(QUEUE_NAME, message.options["redis_message_id"])
    assert names(client, f"dramatiq:{QUEUE_NAME}.msgs") == []
    [second] = names(client, f"dramatiq:{QUEUE_NAME}.DQ.msgs")
    assert second.startswith("msg-a/") and second != first  # a copy of its own: an old ack cannot touch it
    assert held_messages(broker, QUEUE_NAME, ["msg-a"]) == {"msg-a"}
    # due again: back on the queue, then the delayed copy is acked
    delayed = fetch(broker, f"{QUEUE_NAME}.DQ")
    broker.enqueue(delayed.copy(queue_name=QUEUE_NAME))
    broker.do_ack(f"{QUEUE_NAME}.DQ", delayed.options["redis_message_id"])
    [third] = names(client, f"dramatiq:{QUEUE_NAME}.msgs")
    assert third.startswith("msg-a/") and client.lrange(f"dramatiq:{QUEUE_NAME}", 0, -1) == [third.encode()]
    assert held_messages(broker, QUEUE_NAME, ["msg-a"]) == {"msg-a"}


def test_the_dispatcher_names_the_runs_whose_message_is_held_nowhere(redis_url: str) -> None:
    broker = broker_for(redis_url)
    dispatcher = QueueDispatcher(broker=broker)
    for i in range(1500):  # more than one transaction's worth
        dispatcher.send(f"run_{i}", f"msg-{i}")
    lost = [n for n in names(broker.client, f"dramatiq:{QUEUE_NAME}.msgs") if n.startswith(("msg-7/", "msg-1400/"))]
    broker.client.hdel(f"dramatiq:{QUEUE_NAME}.msgs", *lost)
    dead = fetch(broker)  # msg-0: dead-lettered after its retries
    broker.do_nack(QUEUE_NAME, dead.options["redis_message_id"])
    refs = [ref(f"run_{i}", f"msg-{i}") for i in range(1500)] + [ref("run_never", None)]
    assert dispatcher.missing(refs) == {"run_0", "run_7", "run_1400", "run_never"}


def test_the_messages_of_a_dead_worker_go_back_on_their_queue_at_once(redis_url: str) -> None:
    # heartbeat timeout 0.2 s: half PODFLOW_HEARTBEAT_TIMEOUT
    worker = broker_for(redis_url, heartbeat_interval_s=0.1, heartbeat_timeout_s=0.4)
    sweeper = broker_for(redis_url, heartbeat_interval_s=0.1, heartbeat_timeout_s=0.4)
    QueueDispatcher(broker=sweeper).send("run_a", "msg-a")
    fetch(worker)  # then the worker is SIGKILLed: it never acks, never calls again
    client: redis.Redis = sweeper.client
    QueueDispatcher(broker=sweeper).requeue_orphans()
    assert client.llen(f"dramatiq:{QUEUE_NAME}") == 0  # not dead yet
    time.sleep(0.3)
    QueueDispatcher(broker=sweeper).requeue_orphans()
    assert [n.decode().partition("/")[0] for n in client.lrange(f"dramatiq:{QUEUE_NAME}", 0, -1)] == ["msg-a"]
    assert not client.exists(f"dramatiq:__acks__.{worker.broker_id}.{QUEUE_NAME}")
    assert held_messages(sweeper, QUEUE_NAME, ["msg-a"]) == {"msg-a"}


def test_a_stopped_worker_leaves_the_heartbeats_unless_it_still_holds_messages(redis_url: str) -> None:
    worker = broker_for(redis_url)
    QueueDispatcher(broker=worker).send("run_a", "msg-a")
    message = fetch(worker)
    heartbeats = "dramatiq:__heartbeats__"
    assert worker.client.zscore(heartbeats, worker.broker_id) is not None
    assert not leave_heartbeats(worker)  # a message it never acked: maintenance must find it
    assert worker.client.zscore(heartbeats, worker.broker_id) is not None
    worker.do_ack(QUEUE_NAME, message.options["redis_message_id"])
    assert leave_heartbeats(worker)
    assert worker.client.zscore(heartbeats, worker.broker_id) is None


def test_a_message_an_older_podflow_enqueued_is_still_found(redis_url: str) -> None:
    broker = broker_for(redis_url)
    old = Message(queue_name=QUEUE_NAME, actor_name="generate_podcast", args=("run_old",), kwargs={}, options={},
                  message_id="msg-old")  # fmt: skip
    broker.do_enqueue(QUEUE_NAME, "4c5e0c9e-bare-uuid", old.encode())  # as Dramatiq names it
    assert held_messages(broker, QUEUE_NAME, ["msg-old", "msg-gone"]) == {"msg-old"}


def test_a_closed_consumer_puts_back_what_it_fetched_and_never_handed_out(redis_url: str) -> None:
    broker = broker_for(redis_url)
    dispatcher = QueueDispatcher(broker=broker)
    for i in range(3):
        dispatcher.send(f"run_{i}", f"msg-{i}")
    consumer = broker.consume(QUEUE_NAME, prefetch=5, timeout=100)
    handed = next(consumer)  # one fetch took all three; one is handed out, two wait in the consumer
    acks = f"dramatiq:__acks__.{broker.broker_id}.{QUEUE_NAME}"
    assert broker.client.scard(acks) == 3
    # a worker stopping: what it holds in memory goes back (Dramatiq's Worker.stop), then the consumer closes
    consumer.requeue([handed])
    consumer.close()
    assert not broker.client.exists(acks)
    queued = [n.decode().partition("/")[0] for n in broker.client.lrange(f"dramatiq:{QUEUE_NAME}", 0, -1)]
    assert sorted(queued) == ["msg-0", "msg-1", "msg-2"]
    assert leave_heartbeats(broker)  # so the stopped worker leaves the heartbeats at once
