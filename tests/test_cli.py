from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from slcvae.cli.main import app
from tests import sizes

runner = CliRunner()
TINY = sizes.cli([*sizes.LEGACY, *sizes.TINY, *sizes.QUIET, *sizes.labels_after(2)])


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, where: str, what: str):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    assert where in lines[0] and what in lines[0], lines[0]


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        (None, "train.tsv:1", "no such file"),
        (b"", "train.tsv:1", "file is empty"),
        (b"a\tb\nbroken\n", "train.tsv:2", "no tab"),
        (b"a\tb\n\xc3\x28\tb\n", "train.tsv:2", "not valid UTF-8"),
        (b"a\t \n", "train.tsv:1", "empty target"),
    ],
)
def test_train_bad_input_exit_2_and_nothing_written(tmp_path, content, where, what):
    bad = tmp_path / "train.tsv"
    if content is not None:
        bad.write_bytes(content)
    (tmp_path / "valid.tsv").write_text("a\tb\n")
    result = invoke(
        "train", "--model", "cvae", "--train", bad, "--valid", tmp_path / "valid.tsv", "--out", tmp_path / "out", *TINY
    )
    assert_one_line_error(result, where, what)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("train.eval_every=0", "must be >= 1, got 0"),  # was a ZeroDivisionError
        ("slcvae.label_every=0", "must be >= 1, got 0"),  # was a ZeroDivisionError
        ("train.batch_size=0", "must be >= 1, got 0"),  # was a ZeroDivisionError
        ("cvae.word_dropout=1.5", "must be in [0, 1), got 1.5"),  # was accepted
        ("train.lr=nan", "must be >= 0, got nan"),
    ],
)
def test_config_values_out_of_range_are_one_line_errors(tmp_path, synth_dir, value, rule):
    args = ["--train", synth_dir / "train.tsv", "--valid", synth_dir / "valid.jsonl", "--out", tmp_path / "o"]
    assert_one_line_error(invoke("train", "--model", "slcvae", *args, "--set", value), value.split("=")[0], rule)
    assert not (tmp_path / "o").exists()


def test_train_rejects_unknown_model_and_config_key(tmp_path, synth_dir):
    args = ["--train", synth_dir / "train.tsv", "--valid", synth_dir / "valid.jsonl", "--out", tmp_path / "o"]
    assert_one_line_error(invoke("train", "--model", "vae", *args), "--model", "unknown model 'vae'")
    assert_one_line_error(
        invoke("train", "--model", "cvae", *args, "--set", "model.latnt=3"), "model.latnt", "unknown config key"
    )
    assert_one_line_error(invoke("train", "--model", "cvae", *args, "--set", "slcvae.distance=l1"), "distance", "must be one of")
    assert_one_line_error(invoke("train", "--model", "cvae", *args, "--set", "train.lr=fast"), "train.lr", "must be float")
    bad = tmp_path / "c.toml"
    bad.write_text("[model\n")
    assert_one_line_error(invoke("train", "--model", "cvae", *args, "--config", bad), "c.toml:1", "invalid TOML")
    assert not (tmp_path / "o").exists()


def test_cli_pipeline_train_generate_evaluate(tmp_path, synth_dir):
    run = tmp_path / "run"
    r = invoke(
        "train",
        "--model",
        "slcvae",
        "--train",
        synth_dir / "train.tsv",
        "--valid",
        synth_dir / "valid.jsonl",
        "--out",
        run,
        "--max-steps",
        6,
        "--seed",
        3,
        *TINY,
    )
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 3
    pred = tmp_path / "pred.jsonl"
    for decode in ([], ["--do-sample"], ["--num-beams", 5]):  # greedy, sampling, beam
        r = invoke("generate", "--model-dir", run, "--input", synth_dir / "test.jsonl", "--output", pred,
                   "--num-return-sequences", 3, *decode, "--top-k", 5, "--top-p", 0.9)  # fmt: skip
        assert r.exit_code == 0, r.output
        rows = [json.loads(line) for line in pred.read_text().splitlines()]
        assert len(rows) == 48 and all(len(row["samples"]) == 3 for row in rows)
        assert rows[0]["source"].startswith("item : ")
    r = invoke("evaluate", "--predictions", pred, "--references", synth_dir / "test.jsonl", "--json")
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.stdout)
    assert {"bleu_precision", "bleu_recall", "bleu_f1", "distinct_1", "distinct_2", "mode_precision", "mode_coverage"} <= set(
        metrics
    )
    r = invoke("evaluate", "--predictions", pred, "--references", synth_dir / "test.jsonl", "--model-dir", run,
               "--checkpoint", "last", "--iw-samples", 3, "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    health = json.loads(r.stdout)
    assert {"kl", "active_units", "mi", "iw_nll", "iw_ppl", "sacrebleu", "self_bleu", "inter_distinct_2"} <= set(health)
    assert health["iw_nll"] <= health["elbo"] + 1e-3  # the importance-weighted bound is at least as tight
    # out of order or a wrong count are errors, not silently misaligned scores
    lines = pred.read_text().splitlines()
    (tmp_path / "short.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    assert_one_line_error(
        invoke("evaluate", "--predictions", tmp_path / "short.jsonl", "--references", synth_dir / "test.jsonl"),
        "short.jsonl",
        "47 predictions but",
    )
    (tmp_path / "swap.jsonl").write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    assert_one_line_error(
        invoke("evaluate", "--predictions", tmp_path / "swap.jsonl", "--references", synth_dir / "test.jsonl"),
        "swap.jsonl:1",
        "source does not match",
    )
    sources = tmp_path / "sources.tsv"
    sources.write_text("item : hat | color : red | material : silk\nitem : coat | color : blue | material : wool\n")
    r = invoke("generate", "--model-dir", run, "--input", sources, "--output", tmp_path / "new.jsonl", "-n", 2)
    assert r.exit_code == 0, r.output
    assert [len(json.loads(line)["samples"]) for line in (tmp_path / "new.jsonl").read_text().splitlines()] == [2, 2]
    assert_one_line_error(
        invoke("generate", "--model-dir", run, "--input", sources, "--output", tmp_path / "y.jsonl", "--latent", "posterior"),
        "sources.tsv:1",
        "no tab",
    )
    assert_one_line_error(
        invoke("generate", "--model-dir", run, "--input", synth_dir / "test.jsonl", "--output", pred, "--top-p", 1.5),
        "--top-p",
        "must be <= 1, got 1.5",
    )
    assert_one_line_error(
        invoke("generate", "--model-dir", tmp_path, "--input", synth_dir / "test.jsonl", "--output", tmp_path / "x.jsonl"),
        "best.pt",
        "no such checkpoint",
    )
    assert not (tmp_path / "x.jsonl").exists()


def test_synth_writes_known_targets(tmp_path):
    r = invoke("synth", "--out", tmp_path / "s", "--seed", 1)
    assert r.exit_code == 0 and json.loads(r.stdout)["test_sources"] == 48
    row = json.loads((tmp_path / "s" / "test.jsonl").read_text().splitlines()[0])
    assert len(row["targets"]) == 4 and len(set(row["targets"])) == 4


def test_every_command_help_shows_an_example():
    for command in ("synth", "prepare", "train", "generate", "evaluate", "demo", "bench"):
        r = invoke(command, "--help")
        assert r.exit_code == 0 and "Example: slcvae " + command in " ".join(r.output.split())
    # square brackets print as written (rich markup would eat "[data]")
    assert "[data] [model] [cvae] [slcvae] [train]" in " ".join(invoke("train", "--help").output.split())


def test_real_process_prints_no_traceback(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "slcvae",
            "evaluate",
            "--predictions",
            str(tmp_path / "p.jsonl"),
            "--references",
            str(tmp_path / "r.tsv"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.strip() == f"error: {tmp_path / 'p.jsonl'}:1: no such file"


def test_seq2seq_decoding_baselines_diverse_beam_and_mmi(tmp_path, synth_dir):
    runs = {}
    for model in ("seq2seq", "lm", "cvae"):
        runs[model] = tmp_path / model
        r = invoke("train", "--model", model, "--train", synth_dir / "train.tsv", "--valid", synth_dir / "valid.jsonl",
                   "--out", runs[model], "--max-steps", 4, *TINY)  # fmt: skip
        assert r.exit_code == 0, r.output
    base = ["generate", "--model-dir", runs["seq2seq"], "--input", synth_dir / "test.jsonl", "--num-samples", 4]
    for decode, extra in (("diverse_beam", ["--num-beam-groups", 4, "--diversity-penalty", 1.0]),
                          ("mmi", ["--lm", runs["lm"], "--num-beams", 6])):  # fmt: skip
        out = tmp_path / f"{decode}.jsonl"
        r = invoke(*base, "--output", out, *extra)
        assert r.exit_code == 0, r.output
        rows = [json.loads(line)["samples"] for line in out.read_text().splitlines()]
        assert len(rows) == 48 and all(len(s) == 4 for s in rows)
    x = tmp_path / "x.jsonl"
    assert_one_line_error(invoke(*base, "--output", x, "--do-sample", "--num-beams", 3), "--num-beams", "does not sample")
    assert_one_line_error(invoke(*base, "--output", x, "--lm", runs["cvae"]), "config.json", "not an lm")
    cvae = ["generate", "--model-dir", runs["cvae"], "--input", synth_dir / "test.jsonl", "--output", x]
    assert_one_line_error(invoke(*cvae, "--num-beam-groups", 2), "--num-beam-groups", "seq2seq decoding baseline")
    # the same requests through the Python API (Hugging Face's names) give the CLI's outputs for the same seed
    import slcvae
    from slcvae.data.corpus import read_corpus

    sources = [ex.source_text for ex in read_corpus(synth_dir / "test.jsonl")]
    gen = slcvae.Generator.from_pretrained(runs["seq2seq"])
    requests = [
        (["--num-beams", 4, "--num-beam-groups", 4, "--diversity-penalty", 1.0, "--no-repeat-ngram-size", 2],
         dict(num_beams=4, num_beam_groups=4, diversity_penalty=1.0, no_repeat_ngram_size=2)),
        (["--lm", runs["lm"], "--num-beams", 6], dict(num_beams=6, lm=runs["lm"])),
        (["--do-sample", "--noise", 0.5, "--top-k", 5, "--repetition-penalty", 1.3, "--max-new-tokens", 6],
         dict(do_sample=True, noise=0.5, top_k=5, repetition_penalty=1.3, max_new_tokens=6)),
        (["--do-sample", "--top-k", 3, "--distinct", "--max-draws", 12], dict(do_sample=True, top_k=3, distinct=True,
                                                                             max_draws=12)),
    ]  # fmt: skip
    for cli, api in requests:
        out = tmp_path / "same.jsonl"
        assert invoke(*base, "--output", out, "--seed", 5, "--batch-size", 100, *cli).exit_code == 0
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert gen.generate(sources, 4, seed=5, batch_size=100, **api) == [line["samples"] for line in lines], cli
        if "distinct" in api:  # every source's outputs differ, or it drew all it may
            assert [line["drawn"] for line in lines] == gen.last_drawn
            assert all(len(set(line["samples"])) == 4 or line["drawn"] == 12 for line in lines)
            assert all(len(set(line["samples"])) == len(line["samples"]) for line in lines)
    # and over HTTP: the same diverse-beam request, the same outputs
    from fastapi.testclient import TestClient

    from slcvae.serving.app import create_app

    body = {"sources": sources[:5], "n": 4, "num_beams": 4, "num_beam_groups": 4, "diversity_penalty": 1.0,
            "no_repeat_ngram_size": 2, "seed": 5}  # fmt: skip
    with TestClient(create_app(gen)) as client:
        reply = client.post("/v1/generate", json=body)
    assert reply.status_code == 200, reply.text
    api = dict(num_beams=4, num_beam_groups=4, diversity_penalty=1.0, no_repeat_ngram_size=2, seed=5)
    assert reply.json()["samples"] == gen.generate(sources[:5], 4, **api)


def test_file_faults_are_one_line_errors(tmp_path, synth_dir, monkeypatch):
    """Each of these printed a traceback before: a folder for --output, a file for --out, a truncated
    checkpoint, a missing tokenizer file, a full disk."""
    data = ["--train", synth_dir / "train.tsv", "--valid", synth_dir / "valid.jsonl"]
    (tmp_path / "afile").write_text("x")
    assert_one_line_error(invoke("train", "--model", "cvae", *data, "--out", tmp_path / "afile", *TINY), "afile", "names a file")
    run = tmp_path / "run"
    assert invoke("train", "--model", "cvae", *data, "--out", run, "--max-steps", 2, *TINY).exit_code == 0
    gen = ["generate", "--model-dir", run, "--input", synth_dir / "test.jsonl", "--checkpoint", "last"]
    assert_one_line_error(invoke(*gen, "--output", tmp_path), str(tmp_path), "names a folder")
    monkeypatch.setattr("slcvae.io.os.replace", _disk_full)  # every file the tool writes goes through slcvae.io
    full = invoke("train", "--model", "cvae", *data, "--out", tmp_path / "full", "--max-steps", 2, *TINY)
    assert_one_line_error(full, "config.json", "No space left on device")
    monkeypatch.undo()
    assert invoke(*gen, "--output", tmp_path / "p.jsonl").exit_code == 0
    (run / "last.pt").write_bytes((run / "last.pt").read_bytes()[:1000])  # truncated, as by a kill mid-copy
    assert_one_line_error(invoke(*gen, "--output", tmp_path / "q.jsonl"), "last.pt", "corrupt or truncated checkpoint")
    (run / "tokenizer_mode.json").unlink()
    assert_one_line_error(invoke(*gen, "--output", tmp_path / "q.jsonl"), "tokenizer_mode.json", "missing or unreadable")
    (run / "tokenizer_mode.json").write_text('{"mode": "word"}\n')
    (run / "tokenizer.json").write_text("{not json")
    assert_one_line_error(invoke(*gen, "--output", tmp_path / "q.jsonl"), "tokenizer.json", "unreadable tokenizer")
    assert not (tmp_path / "q.jsonl").exists()


def _disk_full(src, dst):
    raise OSError(28, "No space left on device", str(dst))


def test_generate_streams_in_chunks_and_resumes_a_partial_output(tmp_path, synth_dir):
    """A torn partial output (a crash mid-write) resumed with --resume equals an uninterrupted output."""
    run = tmp_path / "run"
    r = invoke("train", "--model", "cvae", "--train", synth_dir / "train.tsv", "--valid", synth_dir / "valid.jsonl",
               "--out", run, "--max-steps", 4, *TINY)  # fmt: skip
    assert r.exit_code == 0, r.output
    full, part = tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    args = ["generate", "--model-dir", run, "--input", synth_dir / "test.jsonl", "--num-samples", 3, "--do-sample",
            "--batch-size", 10, "--checkpoint", "last"]  # fmt: skip
    assert invoke(*args, "--output", full).exit_code == 0
    lines = full.read_text().splitlines(keepends=True)
    assert len(lines) == 48
    part.write_text("".join(lines[:23]) + lines[23][:17])  # 23 whole lines, then a torn one
    r = invoke(*args, "--output", part, "--resume")
    assert r.exit_code == 0, r.output
    assert "resumed after 20" in r.output  # back to the chunk boundary: chunk 2 is redone with its own seed
    assert part.read_text() == full.read_text()
    # a partial output of another input is refused, naming the line
    part.write_text(json.dumps({"source": "something else", "samples": ["x"]}) + "\n")
    r = invoke(*args, "--output", part, "--resume")
    assert r.exit_code == 2 and "part.jsonl:1: --resume: this line's source is not the input's" in r.output
    # a held output file is refused, naming the holder
    lock = full.with_name("full.jsonl.lock")
    lock.write_text(json.dumps({"pid": 1, "host": __import__("socket").gethostname(), "started": "now", "command": "x"}))
    r = invoke(*args, "--output", full)
    assert r.exit_code == 2 and "in use by process 1" in r.output


def test_debug_shows_the_exception_instead_of_one_line(tmp_path):
    args = ["generate", "--model-dir", tmp_path, "--input", tmp_path / "x.tsv", "--output", tmp_path / "y.jsonl"]
    plain = invoke(*args)
    assert plain.exit_code == 2 and "x.tsv:1: no such file" in plain.stderr
    debug = invoke("--debug", *args)
    assert type(debug.exception).__name__ == "InputError" and "x.tsv:1: no such file" in str(debug.exception)


def test_inference_and_scoring_import_nothing_from_training():
    """The generator, generation, serving and evaluation load models through slcvae.loading, not the training code."""
    code = (
        "import sys, slcvae.generator, slcvae.generation, slcvae.serving.app, slcvae.evaluation, slcvae.evaluation.validation; "
        "print(sorted(m for m in sys.modules if m.startswith('slcvae.training')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
