"""`slcvae compare`: a tiny sweep, its resume (finished runs skipped, scores cached) and its spec checks."""

from __future__ import annotations

import json
import pickle

import pytest

from slcvae.data import read_corpus
from slcvae.errors import InputError
from slcvae.evaluation.report import aggregate, table
from slcvae.pipeline.compare import load_spec, run
from tests import sizes

TINY = [*sizes.LEGACY, *sizes.TINY, "train.tensorboard=false", "train.eval_every=6", "train.log_every=2", *sizes.labels_after(2)]


def write_spec(tmp_path, synth_dir, models: str, **extra) -> object:
    top = {"out": str(tmp_path / "out"), "train": str(synth_dir / "train.tsv"), "valid": str(synth_dir / "valid.jsonl"),
           "test": str(synth_dir / "test.jsonl"), "seeds": [1, 2], "max_steps": 6, "workers": 1, "test_sources": 5}  # fmt: skip
    top.update(extra)
    lines = [f"{k} = {json.dumps(v)}" for k, v in top.items() if v is not None]  # None: leave the key out
    lines += ["[generate]", "num_samples = 3", "[evaluate]", "iw_samples = 2", "[models]", models]
    path = tmp_path / "spec.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_compare_sweep_then_resume_skips_finished_runs(tmp_path, synth_dir):
    sets = json.dumps(TINY)
    spec = write_spec(tmp_path, synth_dir, f'cvae = {{ model = "cvae", set = {sets} }}\n'
                      f'slcvae = {{ model = "slcvae", set = {sets} }}\n'
                      'cvae-sample = { run = "cvae", generate = { decode = "sample" } }')  # fmt: skip
    first = run(spec)
    assert first["skipped_finished_runs"] == 0
    assert set(first["results"]) == {"cvae", "slcvae", "cvae-sample"}
    for name in first["results"]:
        for seed in ("1", "2"):
            m = first["results"][name][seed]
            assert m["steps"] == 6 and m["sources"] == 5 and m["samples_per_source"] == 3
            assert {"kl", "mi", "iw_nll", "sacrebleu", "self_bleu", "mode_coverage"} <= set(m)
    out = tmp_path / "out"
    assert (out / "report.md").read_text().count("| slcvae |") == 3  # accuracy, diversity and health tables
    assert all((out / p).stat().st_size > 0 for p in ("curves.png", "tradeoff.png", "modes.png"))
    # the seeds differ: the sample std is reported
    assert first["results"]["cvae"]["1"]["bleu_precision"] != first["results"]["cvae"]["2"]["bleu_precision"]

    # second call: every run is finished and scored, nothing is retrained or regenerated
    ckpt = out / "runs" / "cvae" / "seed1" / "last.pt"
    stamp = ckpt.stat().st_mtime_ns
    second = run(spec)
    assert second["skipped_finished_runs"] == 4
    assert ckpt.stat().st_mtime_ns == stamp
    assert second["results"] == first["results"]

    # an interrupted run (no summary.json) resumes from last.pt instead of starting over
    (out / "runs" / "slcvae" / "seed2" / "summary.json").unlink()
    (out / "runs" / "slcvae" / "seed2" / "eval.json").unlink()
    third = run(spec)
    assert third["skipped_finished_runs"] == 3
    assert third["results"]["slcvae"]["2"]["steps"] == 6


def test_only_runs_the_named_rows_and_what_they_need(tmp_path, synth_dir):
    sets = json.dumps(TINY)
    spec = write_spec(tmp_path, synth_dir, f'seq2seq = {{ model = "seq2seq", set = {sets} }}\n'
                      f'lm = {{ model = "lm", set = {sets} }}\n'
                      f'cvae = {{ model = "cvae", set = {sets} }}\n'
                      'mmi = { run = "seq2seq", generate = { decode = "mmi", beam_size = 2, lm = "lm" } }',
                      seeds=[1])  # fmt: skip
    part = run(spec, only=["mmi"])
    runs = tmp_path / "out" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["lm", "mmi", "seq2seq"]  # mmi's training run and its lm; no cvae
    assert set(part["results"]) == {"seq2seq", "mmi"} and part["only"] == ["mmi"]
    whole = run(spec)  # the rest of the sweep: the finished runs are skipped, not retrained
    assert whole["skipped_finished_runs"] == 2 and whole["only"] == []
    assert whole["results"]["mmi"] == part["results"]["mmi"] and "cvae" in whole["results"]
    with pytest.raises(InputError, match=r"--only nope: no such entry in \[models\] \(entries: seq2seq, lm, cvae, mmi\)"):
        run(spec, only=["nope"])


def test_entry_seeds_and_this_machines_device_and_workers(tmp_path, synth_dir):
    """A tuning row runs only its own seeds; --device reaches every run's config without making it another run."""
    sets = json.dumps(TINY)
    spec = write_spec(
        tmp_path,
        synth_dir,
        f'cvae = {{ model = "cvae", set = {sets} }}\n'
        f'tuned = {{ model = "cvae", set = {json.dumps([*TINY, "cvae.bow_weight=1.0"])}, seeds = [2] }}',
    )
    out = run(spec, device="cpu", workers=2)
    assert {name: sorted(seeds) for name, seeds in out["results"].items()} == {"cvae": ["1", "2"], "tuned": ["2"]}
    saved = json.loads((tmp_path / "out" / "runs" / "tuned" / "seed2" / "config.json").read_text())
    assert saved["train"]["device"] == "cpu" and not (tmp_path / "out" / "runs" / "tuned" / "seed1").exists()
    assert run(spec)["skipped_finished_runs"] == 3  # the config's device: the same runs, not retrained
    with pytest.raises(InputError, match="unknown device 'tpu'"):
        run(spec, device="tpu")
    with pytest.raises(InputError, match="--workers: must be >= 1, got 0"):
        run(spec, workers=0)


def test_out_puts_a_part_of_the_spec_beside_it(tmp_path, synth_dir):
    """--out: two compares of one spec run side by side, each in its own folder (a folder takes one at a time)."""
    sets = json.dumps(TINY)
    spec = write_spec(tmp_path, synth_dir, f'cvae = {{ model = "cvae", set = {sets} }}', seeds=[1, 2])
    side = run(spec, seeds=[2], out=tmp_path / "side")
    assert sorted(side["results"]["cvae"]) == ["2"] and (tmp_path / "side" / "runs" / "cvae" / "seed2" / "summary.json").is_file()
    assert not (tmp_path / "out").exists()  # the spec's own folder is left alone
    main = run(spec, seeds=[1])
    assert sorted(main["results"]["cvae"]) == ["1"] and not (tmp_path / "out" / "runs" / "cvae" / "seed2").exists()


def test_split_valid_scores_the_same_runs_on_the_validation_file(tmp_path, synth_dir):
    """--split valid: a setting is chosen on validation scores, kept beside the test scores, without retraining."""
    sets = json.dumps(TINY)
    spec = write_spec(tmp_path, synth_dir, f'cvae = {{ model = "cvae", set = {sets} }}', seeds=[1], test_sources=None)
    test = run(spec)
    seed1 = tmp_path / "out" / "runs" / "cvae" / "seed1"
    stamp = (seed1 / "eval.json").stat().st_mtime_ns
    valid = run(spec, split="valid")
    assert valid["skipped_finished_runs"] == 1 and valid["split"] == "valid" and test["split"] == "test"
    m, t = valid["results"]["cvae"]["1"], test["results"]["cvae"]["1"]
    assert m["sources"] == len(read_corpus(synth_dir / "valid.jsonl")) and t["sources"] == len(
        read_corpus(synth_dir / "test.jsonl")
    )
    assert m["sources"] != t["sources"] and m["steps"] == t["steps"] == 6
    assert (seed1 / "eval.json").stat().st_mtime_ns == stamp  # the test scores are untouched
    assert len((seed1 / "valid.pred.jsonl").read_text().splitlines()) == m["sources"]
    out = tmp_path / "out"
    assert json.loads((out / "results.json").read_text())["split"] == "test"
    assert json.loads((out / "results.valid.json").read_text())["results"] == valid["results"]
    assert "scored on valid" in (out / "report.valid.md").read_text() and (out / "tradeoff.valid.png").is_file()
    assert run(spec, split="valid")["results"] == valid["results"]  # cached in valid.eval.json
    with pytest.raises(InputError, match="--split: must be test or valid, got 'train'"):
        run(spec, split="train")


def test_input_error_survives_the_trip_from_a_worker():
    """A worker's error is pickled to the parent; InputError's three-argument constructor used to break that (the
    pool's result thread died and the sweep hung)."""
    err = pickle.loads(pickle.dumps(InputError("runs/x/.lock", 3, "in use by process 7")))
    assert type(err) is InputError and str(err) == "runs/x/.lock:3: in use by process 7"
    assert (err.path, err.line, err.message) == ("runs/x/.lock", 3, "in use by process 7")


def test_compare_refuses_a_run_trained_with_another_config(tmp_path, synth_dir):
    sets = json.dumps(TINY)
    spec = write_spec(tmp_path, synth_dir, f'cvae = {{ model = "cvae", set = {sets} }}', seeds=[1])
    run(spec)
    changed = json.dumps([*TINY, "cvae.bow_weight=1.0"])
    spec = write_spec(tmp_path, synth_dir, f'cvae = {{ model = "cvae", set = {changed} }}', seeds=[1])
    with pytest.raises(InputError, match=r"another config \(cvae.bow_weight: 0.0 -> 1.0\)"):
        run(spec)


@pytest.mark.parametrize(
    ("models", "extra", "message"),
    [
        ('a = { model = "nope" }', {}, "unknown model 'nope'"),
        ('a = { model = "cvae", set = ["cvae.bogus=1"] }', {}, "unknown config key cvae.bogus"),
        ('a = { run = "b" }', {}, "must name an entry that trains"),
        ('a = { model = "cvae", generate = { beams = 3 } }', {}, "unknown field"),
        ('a = { model = "cvae" }', {"max_steps": None}, "give a budget"),
        ('a = { model = "cvae" }', {"max_steps": 0, "max_minutes": 0}, "budget must be positive"),
        ('a = { model = "cvae" }', {"seeds": [1, 1]}, "distinct integers"),
        ('a = { model = "cvae", seeds = [3] }', {}, r"seeds of the spec's \[1, 2\], got \[3\]"),
        ('a = { model = "cvae", seeds = [] }', {}, "models.a: seeds must be a non-empty list"),
        ('a = { model = "cvae", seeds = [1] }\nb = { run = "a", seeds = [2] }', {}, r"seeds \[2\] are not trained by 'a'"),
    ],
)
def test_spec_errors_name_the_problem(tmp_path, synth_dir, models, extra, message):
    with pytest.raises(InputError, match=message):
        load_spec(write_spec(tmp_path, synth_dir, models, **extra))


def test_expected_coverage_from_more_draws(tmp_path, synth_dir):
    sets = json.dumps(TINY)
    path = write_spec(tmp_path, synth_dir, f'seq2seq = {{ model = "seq2seq", set = {sets} }}\n'
                      f'cvae = {{ model = "cvae", set = {sets} }}\n'
                      'cvae-beam = { run = "cvae", generate = { decode = "beam", beam_size = 2 } }', seeds=[1])  # fmt: skip
    path.write_text(path.read_text().replace("iw_samples = 2", "iw_samples = 0\ncoverage_draws = 6"))
    results = run(path)["results"]
    s2s, cvae = results["seq2seq"]["1"], results["cvae"]["1"]
    # greedy seq2seq gives one output per source however often it is drawn: the expectation is the scored value
    assert s2s["mode_coverage_expected"] == pytest.approx(s2s["mode_coverage"])
    assert 0 <= cvae["mode_coverage_expected"] <= 1
    assert "mode_coverage_expected" not in results["cvae-beam"]["1"]  # a beam's outputs are not independent draws
    assert "E[mode cov]" in (tmp_path / "out" / "report.md").read_text()
    path.write_text(path.read_text().replace("coverage_draws = 6", "coverage_draws = 2"))
    with pytest.raises(InputError, match=r"coverage_draws = 2 is below models.seq2seq's num_samples \(3\)"):
        load_spec(path)
    path.write_text(path.read_text().replace("coverage_draws = 2", "coverage_draws = -1"))
    with pytest.raises(InputError, match=r"coverage_draws must be >= 0 \(0 = off\), got -1"):
        load_spec(path)


def test_both_budgets_reach_every_run_and_a_finished_run_must_match_both(tmp_path, synth_dir):
    sets = json.dumps(TINY)
    spec = write_spec(tmp_path, synth_dir, f'cvae = {{ model = "cvae", set = {sets} }}', seeds=[1], max_minutes=5)
    first = run(spec)
    assert first["budget"] == {"max_steps": 6, "max_minutes": 5.0} and first["results"]["cvae"]["1"]["steps"] == 6
    saved = json.loads((tmp_path / "out" / "runs" / "cvae" / "seed1" / "config.json").read_text())["train"]
    assert (saved["max_steps"], saved["max_minutes"]) == (6, 5.0)
    spec = write_spec(tmp_path, synth_dir, f'cvae = {{ model = "cvae", set = {sets} }}', seeds=[1], max_minutes=6)
    with pytest.raises(InputError, match=r"another config \(train.max_minutes: 5.0 -> 6.0\)|max_minutes=5.0"):
        run(spec)
    own = json.dumps([*TINY, "train.max_minutes=5"])  # the entry's own budget wins over the spec's: the run is done
    spec = write_spec(tmp_path, synth_dir, f'cvae = {{ model = "cvae", set = {own} }}', seeds=[1], max_minutes=6)
    assert run(spec)["results"]["cvae"]["1"]["steps"] == 6


def test_report_mean_std_and_bold_best():
    results = {"a": {"1": {"bleu_precision": 0.2, "self_bleu": 0.5}, "2": {"bleu_precision": 0.4, "self_bleu": 0.7}},
               "b": {"1": {"bleu_precision": 0.1, "self_bleu": 0.2}}}  # fmt: skip
    agg = aggregate(results)
    assert agg["a"]["bleu_precision"] == pytest.approx((0.3, 0.1414213, 2))
    md = table(agg, [("bleu_precision", "BLEU-P", 1), ("self_bleu", "self-BLEU", -1)])
    assert "| a | **0.300 ± 0.141** | 0.600 ± 0.141 |" in md
    assert "| b | 0.100 | **0.200** |" in md  # lower self-BLEU is better


def test_report_reader_skips_a_torn_last_log_line_only(tmp_path):
    from slcvae.evaluation.report import read_log

    (tmp_path / "log.jsonl").write_text('{"step": 50, "cvae/kl": 1.0}\n{"step": 100, "cvae/kl": 0.5}\n{"step": 15')
    assert read_log(tmp_path) == [{"step": 50, "cvae/kl": 1.0}, {"step": 100, "cvae/kl": 0.5}]
    (tmp_path / "log.jsonl").write_text('{"step": 50\n{"step": 100, "cvae/kl": 0.5}\n')
    with pytest.raises(InputError, match="log.jsonl:1: not JSON"):
        read_log(tmp_path)


def test_config_diff_ignores_sections_the_model_never_reads():
    from slcvae.config import build_config, config_diff

    old, new = build_config("cvae", None, ["slcvae.distance=nll"]), build_config("cvae", None, ["slcvae.distance=mean_sq"])
    assert config_diff(old, new) == []  # a CVAE never reads [slcvae]: a changed default there leaves its runs valid
    old, new = build_config("slcvae", None, ["slcvae.distance=nll"]), build_config("slcvae")
    assert config_diff(old, new) == ["slcvae.distance: 'nll' -> 'mean_sq'"]
    assert config_diff(build_config("cvae"), build_config("cvae", None, ["train.max_steps=7", "train.lr=0.01"])) == [
        "train.lr: 0.001 -> 0.01"
    ]
