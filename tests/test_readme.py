"""The README's generator example stays valid Python."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_generator_example_compiles() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    examples = [block for block in blocks if "def generate(" in block]
    assert examples, "the README shows a generator"
    for block in examples:
        compile(block, "README.md", "exec")


def test_the_readme_generator_example_keeps_its_llm_call_as_a_checkpoint(fake: object, tmp_path: Path) -> None:
    from podflow.generation.base import GeneratorConfig
    from podflow.generation.context import LocalContext
    from tests.fake_provider import FakeProvider
    from tests.generation.conftest import generation_request, provider

    assert isinstance(fake, FakeProvider)
    [block] = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
               if "def generate(" in b]  # fmt: skip
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    llm = provider(fake)
    try:
        for attempt in (1, 2):
            (tmp_path / f"a{attempt}").mkdir()
            ctx = LocalContext(
                run_id="run_" + "0" * 32,
                work_dir=tmp_path / f"a{attempt}",
                config=GeneratorConfig(llm_provider=llm),
                checkpoint_dir=tmp_path / "checkpoints",
                attempt=attempt,
            )
            result = namespace["generate"](generation_request(), ctx)  # type: ignore[operator]
            assert result.transcript_path.read_text() == "Fake reply."
    finally:
        llm.close()
    assert len(fake.calls("chat")) == 1  # the second attempt reused the intro


def test_the_readme_webhook_receiver_verifies_podflows_signature_and_refuses_a_forgery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from standardwebhooks.webhooks import WebhookVerificationError

    from podflow.timeutil import utcnow
    from podflow.webhooks import signed_headers

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    monkeypatch.setenv("PODFLOW_WEBHOOK_SECRET", secret)
    [block] = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
               if "Webhook(" in b]  # fmt: skip
    assert len(block.strip().splitlines()) <= 5
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    body = '{"type":"run.succeeded","timestamp":"2026-12-02T02:30:00Z","data":{}}'
    headers = signed_headers(secret, msg_id="msg_1_success", now=utcnow(), body=body)
    assert namespace["receive"](body.encode(), headers)["type"] == "run.succeeded"  # type: ignore[operator]
    with pytest.raises(WebhookVerificationError):
        namespace["receive"](body.replace("succeeded", "failed").encode(), headers)  # type: ignore[operator]
