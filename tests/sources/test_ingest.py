"""Source documents: validation, normalisation, titles, dedupe hashes."""

from __future__ import annotations

import hashlib

import pytest

from podflow.errors import InvalidInput, SourceTooLarge
from podflow.sources import ingest_source, resolve_content_type, source_prose
from tests.conftest import T0


def ingest(content: bytes | str, **overrides: object):  # type: ignore[no-untyped-def]
    fields: dict[str, object] = {
        "title": None,
        "filename": None,
        "content_type": None,
        "max_bytes": 1000,
        "now": T0,
    }
    fields.update(overrides)
    return ingest_source(content=content, **fields)  # type: ignore[arg-type]


def test_plain_text_is_normalised_and_hashed() -> None:
    source = ingest(b"\xef\xbb\xbfFirst line  \r\nsecond\r\n\r\n\r\n\r\nthird\x07\n")
    assert source.text == "First line\nsecond\n\nthird"
    assert source.content_type == "text/plain"
    assert source.sha256 == hashlib.sha256(source.text.encode()).hexdigest()
    assert source.byte_size == 38
    assert source.source_id.startswith("src_") and source.created_at == T0


def test_markdown_is_stored_as_markdown_and_read_as_prose() -> None:
    source = ingest("# Rockets\n\nThey **fly**.", filename="notes.md")
    assert source.content_type == "text/markdown"
    assert source.text == "# Rockets\n\nThey **fly**."
    assert source.title == "Rockets"
    assert source_prose(source) == "Rockets\n\nThey fly."


def test_html_is_stored_as_text() -> None:
    source = ingest(b"<title>Page</title><h1>Head</h1><p>Body &amp; soul.</p>", content_type="text/html")
    assert (source.content_type, source.title, source.text) == ("text/html", "Page", "Head\n\nBody & soul.")
    assert source_prose(source) == source.text


def test_the_same_text_hashes_the_same_however_it_arrived() -> None:
    a = ingest("Hello world.\n", filename="a.txt")
    b = ingest(b"Hello world.\r\n", title="other")
    assert a.sha256 == b.sha256 and a.source_id != b.source_id


def test_title_defaults_to_heading_then_filename_stem_then_first_words() -> None:
    assert ingest("# Heading\n\ntext", content_type="text/markdown", title="  Mine ").title == "Mine"
    assert ingest("text only", filename="dir/report.v2.txt").title == "report.v2"
    assert ingest("one two three four five six seven eight nine ten").title == (
        "one two three four five six seven eight …"
    )
    assert ingest("short text").title == "short text"


def test_filename_keeps_only_its_last_component() -> None:
    assert ingest("x", filename="C:\\Users\\me\\doc.txt").filename == "doc.txt"
    assert ingest("x", filename="../../etc/doc.md").filename == "doc.md"


def test_oversized_source_is_refused_naming_the_limit() -> None:
    with pytest.raises(SourceTooLarge) as err:
        ingest(b"x" * 1001, filename="big.txt")
    assert str(err.value) == "source too large: 1001 bytes > PODFLOW_MAX_SOURCE_BYTES=1000"
    assert err.value.field == "file"
    with pytest.raises(SourceTooLarge) as err:
        ingest("é" * 501)  # 1002 bytes in UTF-8
    assert err.value.field == "content"


@pytest.mark.parametrize("content", ["", "   \n\t  ", b"\r\n\r\n", "<p> </p><script>x()</script>"])
def test_empty_source_is_refused(content: bytes | str) -> None:
    with pytest.raises(InvalidInput, match="source is empty") as err:
        ingest(content, content_type="text/html" if "<p>" in str(content) else None)
    assert err.value.field == "content"


def test_markdown_with_nothing_but_code_is_empty() -> None:
    with pytest.raises(InvalidInput, match="source is empty"):
        ingest("```\ncode()\n```", filename="x.md")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL bytes"),
        (b"caf\xe9 latin-1 bytes", "invalid utf-8 at byte 3"),
        (bytes(range(1, 9)) * 4 + b"text", "control characters"),
        ("text with a NUL\x00", "NUL characters"),
    ],
)
def test_binary_source_is_refused_as_not_text(content: bytes | str, why: str) -> None:
    with pytest.raises(InvalidInput, match="source is not text") as err:
        ingest(content, filename="upload.txt")
    assert why in str(err.value) and err.value.field == "file"


def test_an_explicit_charset_is_honoured() -> None:
    source = ingest("café".encode("latin-1"), content_type="text/plain; charset=ISO-8859-1")
    assert source.text == "café"
    with pytest.raises(InvalidInput, match="unknown charset") as err:
        ingest(b"x", content_type="text/plain; charset=nope")
    assert err.value.field == "content_type"


def test_content_type_comes_from_the_explicit_value_then_the_extension() -> None:
    assert resolve_content_type("text/HTML; charset=utf-8", "a.md") == "text/html"
    assert resolve_content_type("application/octet-stream", "a.Markdown") == "text/markdown"
    assert resolve_content_type(None, "a.htm") == "text/html"
    assert resolve_content_type(None, None) == "text/plain"


def test_unknown_types_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput, match="unsupported content type 'application/pdf'") as err:
        ingest(b"%PDF", content_type="application/pdf")
    assert err.value.field == "content_type"
    with pytest.raises(InvalidInput, match=r"cannot tell the type of 'slides\.pptx'") as err:
        ingest(b"x", filename="slides.pptx")
    assert err.value.field == "filename"
