"""The README's generator example stays valid Python."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_generator_example_compiles() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    examples = [block for block in blocks if "def generate(" in block]
    assert examples, "the README shows a generator"
    for block in examples:
        compile(block, "README.md", "exec")
