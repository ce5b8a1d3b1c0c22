from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slcvae.data.corpus import read_corpus, read_pairs
from slcvae.errors import InputError


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_tsv_groups_repeated_sources_and_accepts_bom_crlf(tmp_path):
    path = write(tmp_path, "c.tsv", "\ufeffa b\tx y\r\nc\tz\r\na  b\tw\r\n\r\n".encode())
    examples = read_corpus(path)
    assert [(e.source, e.targets) for e in examples] == [(("a b",), ["x y", "w"]), (("c",), ["z"])]
    assert [e.line for e in examples] == [1, 2]
    assert len(read_pairs(path)) == 3


def test_jsonl_target_lists_turns_and_eou(tmp_path):
    rows = b'{"source": ["hi", "how are you"], "target": "fine"}\n{"source": "x", "targets": ["a", "b", "a"]}\n'
    examples = read_corpus(write(tmp_path, "c.jsonl", rows))
    assert examples[0].source == ("hi", "how are you") and examples[0].source_text == ["hi", "how are you"]
    assert examples[1].targets == ["a", "b"] and examples[1].complete and not examples[0].complete
    tsv = read_corpus(write(tmp_path, "t.tsv", b"hi __eou__ how are you\tfine\n"))
    assert tsv[0].source == ("hi", "how are you")


@pytest.mark.parametrize(
    ("name", "data", "line", "message"),
    [
        ("c.tsv", b"", 1, "file is empty"),
        ("c.tsv", b"a\tb\nno tab here\n", 2, "found no tab"),
        ("c.tsv", b"a\tb\tc\n", 1, "found 2 tabs"),
        ("c.tsv", b"a\tb\n\xff\xfe\tx\n", 2, "not valid UTF-8"),
        ("c.tsv", b" \tb\n", 1, "empty source"),
        ("c.tsv", b"a\t  \n", 1, "empty target"),
        ("c.jsonl", b'{"source": "a", "target": "b"}\n{"source": "a", "target": }\n', 2, "invalid JSON"),
        ("c.jsonl", b'{"target": "b"}\n', 1, 'missing field "source"'),
        ("c.jsonl", b'{"source": "a"}\n', 1, 'missing field "target"'),
        ("c.jsonl", b'{"source": "a", "targets": []}\n', 1, '"targets" must be a non-empty list'),
        ("c.jsonl", b'{"source": [], "target": "b"}\n', 1, "empty source"),
        ("c.jsonl", b'{"source": "a", "target": 3}\n', 1, "target must be a string"),
        ("c.jsonl", b'["a", "b"]\n', 1, "expected a JSON object"),
        ("c.csv", b"a,b\n", 1, "unknown corpus format"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, name, data, line, message):
    path = write(tmp_path, name, data)
    with pytest.raises(InputError) as err:
        read_corpus(path)
    assert err.value.line == line and message in err.value.message
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_corpus(tmp_path / "nope.tsv")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_reader_fuzz_raises_only_input_errors(tmp_path_factory, data):
    """Any bytes either parse into non-empty examples or raise InputError, nothing else."""
    path = tmp_path_factory.mktemp("fuzz") / "c.tsv"
    path.write_bytes(data)
    try:
        examples = read_corpus(path)
    except InputError:
        return
    assert examples and all(e.source and all(e.source) and e.targets and all(e.targets) for e in examples)


def test_sources_without_targets_for_generation(tmp_path):
    tsv = write(tmp_path, "s.tsv", b"just a source\nwith\ta target\n")
    assert [(e.source, e.targets) for e in read_corpus(tsv, require_target=False)] == [
        (("just a source",), []),
        (("with",), ["a target"]),
    ]
    with pytest.raises(InputError, match="found no tab"):
        read_corpus(tsv)
    jsonl = write(tmp_path, "s.jsonl", b'{"source": ["hi", "there"]}\n')
    assert read_corpus(jsonl, require_target=False)[0].targets == []


def test_a_line_over_the_limit_is_named_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr("slcvae.data.corpus.MAX_LINE_BYTES", 64)
    path = tmp_path / "c.tsv"
    path.write_text("short source\tshort target\n" + "x" * 1000 + "\ty\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"c\.tsv:2: line longer than 64 bytes"):
        read_corpus(path)


def test_a_tsv_header_row_is_skipped_not_trained_on(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("Source\tTarget\nhi\thello\nhi\they\n", encoding="utf-8")
    assert [(ex.source, ex.targets, ex.line) for ex in read_corpus(path)] == [(("hi",), ["hello", "hey"], 2)]
    assert [ex.targets for ex in read_pairs(path)] == [["hello"], ["hey"]]
    inputs = tmp_path / "in.tsv"  # generate's input: sources alone, with their header
    inputs.write_text("source\nhow are you ?\n", encoding="utf-8")
    assert [ex.source for ex in read_corpus(inputs, require_target=False)] == [("how are you ?",)]
    path.write_text("source\ttarget\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"train.tsv:1: only a header row"):
        read_corpus(path)
    path.write_text("hi\thello\nsource\ttarget\n", encoding="utf-8")  # only a first line is a header
    assert [ex.source for ex in read_corpus(path)] == [("hi",), ("source",)]
