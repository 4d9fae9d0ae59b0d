"""What the built-in writer says around the sources' sentences, per language.

The episode profile's ``language`` (BCP 47: ``en``, ``en-GB``, ``zh``,
``zh-Hans-CN``, ``cmn``...) picks the phrases by its primary subtag; a
language without phrases of its own is framed in English. Every phrase ends
in its language's own punctuation, and :func:`Phrases.sentence` only adds a
full stop to text that does not already end a sentence in *any* script, so
a Chinese episode never says ``。.`` and an English one never ``.。``.

Add a language by adding a :class:`Phrases` to ``_PHRASES``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ENDS_SENTENCE", "Phrases", "language_name", "phrases_for", "primary_language"]

#: what may end a sentence, in the scripts podflow frames
ENDS_SENTENCE = (".", "!", "?", "…", '"', "\u201d", "。", "！", "？", "」", "』", "）")


@dataclass(frozen=True, slots=True)
class Phrases:
    """One language's framing. Templates use ``{title}``, ``{host}``, ``{names}``..., and the
    episode's name as ``{name}`` (without its final punctuation) or ``{name_sentence}``
    (ending a sentence)."""

    full_stop: str
    list_separator: str
    list_last: str  # between the last two items
    others: str
    agenda_first: str
    agenda_then: str
    agenda_last: str
    part: str
    welcome: str
    with_me: str
    in_this_episode: str
    brief: str
    first_opening: str
    openings: tuple[str, ...]
    handovers: tuple[str, ...]
    answers: tuple[str, ...]
    replies: tuple[str, ...]
    narration: tuple[str, ...]
    greetings: tuple[str, ...]
    farewells: tuple[str, ...]
    reactions: tuple[str, ...]
    recap: str
    thanks_guests: str
    goodbye: str
    goodbye_solo: str
    #: True where a "word" is a character (Chinese, Japanese): lengths count characters
    counts_characters: bool = False
    #: the brief is quoted lower-cased at its start (English "Our brief for today: cover...")
    lower_brief: bool = False

    def sentence(self, text: str) -> str:
        """``text`` ending in sentence punctuation (its own, or this language's full stop)."""
        text = text.strip()
        return text if text.endswith(ENDS_SENTENCE) else text + self.full_stop

    def names(self, episode_name: str) -> dict[str, str]:
        """``{name}`` and ``{name_sentence}`` for the templates."""
        bare = episode_name.strip().rstrip("".join(ENDS_SENTENCE))
        return {"name": bare or episode_name.strip(), "name_sentence": self.sentence(episode_name)}

    def join(self, items: Iterable[str], *, most: int = 4) -> str:
        """``a``, ``a and b``, ``a, b and c``; beyond ``most`` items, ``a, b, c and others``."""
        items = list(items)
        if len(items) > most:
            items = [*items[: most - 1], self.others]
        if len(items) <= 1:
            return "".join(items)
        return self.list_separator.join(items[:-1]) + self.list_last + items[-1]

    def agenda(self, titles: list[str]) -> str:
        """The segment titles as something to say: "first, A; then B; and finally, C"."""
        if len(titles) == 1:
            return titles[0]
        middle = "".join(self.agenda_then.format(title=t) for t in titles[1:-1])
        return self.agenda_first.format(title=titles[0]) + middle + self.agenda_last.format(title=titles[-1])


ENGLISH = Phrases(
    full_stop=".",
    list_separator=", ",
    list_last=" and ",
    others="others",
    agenda_first="first, {title}",
    agenda_then="; then {title}",
    agenda_last="; and finally, {title}",
    part="{title} (part {number})",
    welcome="Welcome to {name_sentence} I'm {host}.",
    with_me="With me today: {names}.",
    in_this_episode="In this episode: {agenda}.",
    brief="Our brief for today: {brief}",
    first_opening="Let's start with {title}.",
    openings=("Next up: {title}.", "Let's turn to {title}.", "Moving on to {title}.", "Now for {title}."),
    handovers=(
        "{name}, what stands out to you here?",
        "{name}, what else should we know?",
        "What do you make of that, {name}?",
        "{name}, can you add to that?",
    ),
    answers=("What stands out to me is this.", "There's more to it.", "Good question.", "Here's what I'd add."),
    replies=("Right.", "Exactly.", "And there's another detail.", "Yes, and it goes further.", "Good point."),
    narration=("Here's another point.", "There's more.", "Worth noting, too.", "And then this."),
    greetings=("Hi, I'm {name}. Glad to be here.", "And I'm {name}. Let's get into it.", "Hello, {name} here."),
    farewells=("Thanks for having me!", "It was a pleasure.", "Thanks, everyone."),
    reactions=("That's a lot to think about.", "Fascinating stuff.", "What a story."),
    recap="That brings us to the end of {name_sentence} We covered {agenda}.",
    thanks_guests="Thank you, {names}.",
    goodbye="Thanks for listening, and goodbye!",
    goodbye_solo="Thanks for listening, and goodbye!",
    lower_brief=True,
)

CHINESE = Phrases(
    full_stop="。",
    list_separator="、",
    list_last="和",
    others="等",
    agenda_first="首先是{title}",
    agenda_then="；然后是{title}",
    agenda_last="；最后是{title}",
    part="{title}（第{number}部分）",
    welcome="欢迎收听{name}。我是{host}。",
    with_me="今天和我一起的有{names}。",
    in_this_episode="本期内容：{agenda}。",
    brief="今天的主题：{brief}",
    first_opening="我们先从{title}说起。",
    openings=("接下来：{title}。", "我们来看看{title}。", "下面谈谈{title}。", "现在说说{title}。"),
    handovers=(
        "{name}，你觉得这里最值得注意的是什么？",
        "{name}，还有什么需要我们了解的吗？",
        "{name}，你怎么看？",
        "{name}，你能再补充一些吗？",
    ),
    answers=("我觉得最值得注意的是这一点。", "这里面还有更多内容。", "好问题。", "我想补充一点。"),
    replies=("没错。", "正是如此。", "还有一个细节。", "是的，而且不止于此。", "说得好。"),
    narration=("再来看另一点。", "还有更多。", "这一点也值得注意。", "接着是这个。"),
    greetings=("大家好，我是{name}，很高兴来到这里。", "我是{name}，我们开始吧。", "你好，我是{name}。"),
    farewells=("谢谢邀请！", "很高兴参与。", "谢谢大家。"),
    reactions=("真是值得深思。", "非常有意思。", "真是个精彩的故事。"),
    recap="本期{name}就到这里。我们聊了{agenda}。",
    thanks_guests="谢谢{names}。",
    goodbye="感谢收听，再见！",
    goodbye_solo="感谢收听，再见！",
    counts_characters=True,
)

_PHRASES = {"en": ENGLISH, "zh": CHINESE, "cmn": CHINESE}

#: names to write into an LLM prompt ("Write in Chinese (zh-CN)"); others go by their tag
_NAMES = {
    "ar": "Arabic", "cmn": "Mandarin Chinese", "de": "German", "en": "English", "es": "Spanish",
    "fr": "French", "hi": "Hindi", "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch",
    "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "sv": "Swedish", "tr": "Turkish",
    "uk": "Ukrainian", "yue": "Cantonese", "zh": "Chinese",
}  # fmt: skip


def primary_language(tag: str) -> str:
    """The primary subtag of a BCP 47 tag, lower case: ``zh-Hans-CN`` -> ``zh``."""
    return tag.replace("_", "-").split("-", 1)[0].lower()


def phrases_for(language: str) -> Phrases:
    """The phrases for ``language`` (a BCP 47 tag); English where there are none."""
    return _PHRASES.get(primary_language(language), ENGLISH)


def language_name(language: str) -> str:
    """``Chinese (zh-CN)``; the tag itself for a language podflow has no name for."""
    name = _NAMES.get(primary_language(language))
    return f"{name} ({language})" if name else f"the language with BCP 47 tag {language}"
