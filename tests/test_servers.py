from __future__ import annotations


def test_the_private_redis_server_answers_and_is_not_the_shared_one(redis_server, redis_url) -> None:
    assert redis_server.port != 6379
    client = redis_server.client()
    client.set("podflow-test", "1")
    assert client.get("podflow-test") == b"1"
    client.close()
