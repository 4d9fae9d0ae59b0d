"""The built-in writer's framing per language: BCP 47 tags, lists, and sentence ends that never mix scripts."""

from __future__ import annotations

import pytest

from podflow.generation.framing import CHINESE, ENGLISH, language_name, phrases_for

TAGS = [("en", ENGLISH), ("en-GB", ENGLISH), ("zh", CHINESE), ("zh-Hans-CN", CHINESE), ("cmn", CHINESE)]


@pytest.mark.parametrize(("tag", "phrases"), [*TAGS, ("pt-BR", ENGLISH)])
def test_a_language_tag_picks_phrases_by_its_primary_subtag_else_english(tag: str, phrases: object) -> None:
    assert phrases_for(tag) is phrases


def test_a_full_stop_is_added_only_to_text_that_ends_no_sentence_in_any_script() -> None:
    assert CHINESE.sentence("科技周报") == "科技周报。"
    assert CHINESE.sentence("你怎么看？") == "你怎么看？"
    assert CHINESE.sentence("It works.") == "It works."  # never "It works.。"
    assert ENGLISH.sentence("可回收火箭。") == "可回收火箭。"  # never "。."
    assert ENGLISH.sentence("Weekly Roundup") == "Weekly Roundup."


def test_lists_and_agendas_read_naturally_in_each_language() -> None:
    assert CHINESE.join(["小明", "小红", "小刚"]) == "小明、小红和小刚"
    assert ENGLISH.join(["Ada", "Bo", "Cy"]) == "Ada, Bo and Cy"
    assert CHINESE.agenda(["火箭", "电池", "城市"]) == "首先是火箭；然后是电池；最后是城市"
    assert ENGLISH.agenda(["A", "B"]) == "first, A; and finally, B"


def test_the_episode_name_is_used_bare_or_ending_a_sentence() -> None:
    assert CHINESE.welcome.format(**CHINESE.names("科技周报！"), host="小明") == "欢迎收听科技周报。我是小明。"
    english = ENGLISH.welcome.format(**ENGLISH.names("Weekly Roundup"), host="Alex")
    assert english == "Welcome to Weekly Roundup. I'm Alex."


def test_a_prompt_names_the_language() -> None:
    assert language_name("zh-CN") == "Chinese (zh-CN)"
    assert language_name("tlh") == "the language with BCP 47 tag tlh"
