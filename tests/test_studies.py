from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch


def _study(name: str):
    """A script of studies/ imported as a module."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "studies" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mode_shares = _study("mode_shares")


def test_chance_of_showing_every_target_matches_enumeration():
    # 4 targets, 10 draws: 1 - 4 (3/4)^10 + 6 (1/2)^10 - 4 (1/4)^10
    assert mode_shares.all_shown(4, 10) == pytest.approx(1 - 4 * 0.75**10 + 6 * 0.5**10 - 4 * 0.25**10)
    assert mode_shares.all_shown(2, 2) == pytest.approx(0.5)  # AB or BA of AA, AB, BA, BB
    assert mode_shares.all_shown(3, 2) == pytest.approx(0, abs=1e-12)  # 2 draws cannot show 3 targets


def test_shares_count_targets_shown_per_source():
    test = [{"source": "x", "targets": ["a", "b"]}, {"source": "y", "targets": ["c", "d", "e"]}]
    preds = [{"source": "x", "samples": ["a", "b", "a", "zz"]}, {"source": "y", "samples": ["e", "e", "e", "e"]}]
    share, shown, full, expected = mode_shares.shares(test, preds)
    assert share == [2 / 7, 1 / 7, 4 / 7]  # by position in each source's target list; "zz" is not a target
    assert dict(shown) == {2: 1, 1: 1} and full == 1
    assert expected == pytest.approx(mode_shares.all_shown(2, 4) + mode_shares.all_shown(3, 4))
    with pytest.raises(ValueError, match="prediction for 'y'"):
        mode_shares.shares(test, preds[::-1])


latent_modes = _study("latent_modes")


def test_rank_correlation_exact_on_tiny_inputs():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert latent_modes.spearman(a, 10 * a) == pytest.approx(1.0)
    assert latent_modes.spearman(a, -a) == pytest.approx(-1.0)
    assert latent_modes.spearman(a, torch.tensor([2.0, 1.0, 4.0, 3.0])) == pytest.approx(0.6)  # 1 - 6 * 4 / (4 * 15)


def test_latent_modes_shares_of_a_two_target_source_add_up():
    from slcvae.config import build_config
    from slcvae.data.corpus import Example
    from slcvae.data.tokenizer import TextTokenizer
    from slcvae.models import build_model
    from tests.test_models import SMALL

    tok = TextTokenizer.train(["a b c d e f g", "h i j k"], mode="word")
    cfg = build_config("cvae", sets=SMALL)
    model = build_model(cfg, tok.vocab_size, tok.unk_id).eval()
    stats = latent_modes.source_stats(model, tok, cfg.data, Example(("a b c",), ["d e", "f g"]), draws=40)
    assert stats["k"] == 2
    # with two targets the least and the most drawn shares and the unmatched draws partition all 40 draws
    assert stats["min"] + stats["max"] + stats["invalid"] == pytest.approx(1.0)
    assert stats["near_min"] + stats["near_max"] == pytest.approx(1.0) and stats["near_min"] <= 0.5
    assert stats["dist"] > 0 and stats["dist_ratio"] >= 1.0 and stats["width"] > 0


paper_table = _study("paper_table")


def _compare_folder(root: Path, name: str, seeds: dict[int, float], lr: float = 1e-3) -> Path:
    """A compare output folder as `slcvae compare` leaves it: results.json and each run's summary and config."""
    import json

    metrics = {s: {"paper_bleu_precision": p, "paper_bleu_recall": 2 * p, "distinct_1": 0.01, "distinct_2": 0.05,
                   "steps": 1000 * s, "epochs": 1.5 * s, "train_seconds": 60.0 * s, "valid_kl": 2.0, "examples": []}
               for s, p in seeds.items()}  # fmt: skip
    root.mkdir(parents=True)
    results = {"spec": "spec.toml", "results": {name: {str(s): m for s, m in metrics.items()}}}
    (root / "results.json").write_text(json.dumps(results))
    for s in seeds:
        run = root / "runs" / name / f"seed{s}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"early_stopped": s != 3}))
        config = {"model": {"latent": 8}, "train": {"lr": lr, "seed": s, "threads": s, "max_minutes": 10.0 * s}}
        (run / "config.json").write_text(json.dumps(config))
    return root


def test_paper_table_ledger_adds_sessions_runs_into_one_row(tmp_path):
    ledger = tmp_path / "ledger"
    first = _compare_folder(tmp_path / "session1", "kla-wd-sl", {1: 0.20, 2: 0.22})
    assert len(paper_table.record(paper_table.entries([first]), ledger)) == 2
    assert paper_table.record(paper_table.entries([first]), ledger) == []  # same numbers: nothing new to write
    later = _compare_folder(tmp_path / "session2", "kla-wd-sl", {3: 0.24})  # another session, another seed
    assert paper_table.record(paper_table.entries([later]), ledger) == []  # seed 3 hit its cap: not a converged run
    paper_table.record(paper_table.entries([later]), ledger, unconverged=True)
    (row,) = paper_table.build(paper_table.read_ledger(ledger))
    assert row["row"] == "KLA+WD+SL (SLCVAE)" and row["seeds"] == [1, 2, 3] and row["converged"] == [True, True, False]
    cell = row["paper_bleu_precision"]
    assert cell == {"paper": 0.214, "ours": 0.22, "std": 0.02, "gap": 0.006}  # mean 0.22, sample std 0.02
    assert row["steps"] == [1000, 2000, 3000] and row["train_minutes"] == [1.0, 2.0, 3.0]
    assert "| KLA+WD+SL (SLCVAE) | 1, 2, 3 | 0.214 / 0.220 +- 0.020 (+0.006) |" in paper_table.markdown([row])
    other = _compare_folder(tmp_path / "rerun", "kla-wd-sl", {3: 0.30})
    with pytest.raises(SystemExit, match="other numbers"):  # a rerun never overwrites a recorded seed silently
        paper_table.record(paper_table.entries([other]), ledger, unconverged=True)
    faster = _compare_folder(tmp_path / "lr", "kla-wd-sl", {4: 0.25}, lr=1e-2)
    paper_table.record(paper_table.entries([faster]), ledger)
    with pytest.raises(SystemExit, match="different configs"):  # one row, one setting
        paper_table.build(paper_table.read_ledger(ledger))


context_use = _study("context_use")


@pytest.mark.parametrize("n", [2, 3, 10])
def test_context_use_gives_every_reply_another_examples_context(n):
    from slcvae.data.batching import Encoded

    data = Encoded(turns=[[[i, i]] for i in range(n)], targets=[[100 + i] for i in range(n)], truncated=1)
    other = context_use.shuffled(data)
    assert other.targets == data.targets and other.truncated == 1
    owners = [turns[0][0] for turns in other.turns]
    assert sorted(owners) == list(range(n))  # each context used once
    assert all(owner != i for i, owner in enumerate(owners))  # and never with its own reply


pretrained_table = _study("pretrained_table")


def test_pretrained_table_merges_a_rescore_by_seed(tmp_path):
    import json

    results = {"results": {"bow": {"1": {"bleu_precision": 0.2}, "2": {"bleu_precision": 0.4}}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    rescore = [{"run": "x/runs/bow/seed2", "metrics": {"semantic_precision": 0.7, "bleu_precision": 9.0}},
               {"run": "x/runs/bow/seed1/", "metrics": {"semantic_precision": 0.5, "meaning_distinct": 3.0}}]  # fmt: skip
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rescore))
    name, seeds = pretrained_table.row(f"ctl={tmp_path / 'results.json'}:bow+{tmp_path / 'm.jsonl'}")
    assert name == "ctl" and seeds == {"1": {"bleu_precision": 0.2, "semantic_precision": 0.5, "meaning_distinct": 3.0},
                                       "2": {"bleu_precision": 0.4, "semantic_precision": 0.7}}  # fmt: skip


paired_table = _study("paired_table")


def test_paired_table_pairs_by_seed_and_counts_the_better_direction():
    results = {
        "cvae": {"1": {"source_use": 1.0, "generic_share": 0.5}, "2": {"source_use": 3.0, "generic_share": 0.1}},
        "cvae-att": {"1": {"source_use": 2.0, "generic_share": 0.2}, "2": {"source_use": 2.0, "generic_share": 0.3}},
        "seq2seq": {"1": {"source_use": 0.0}},  # no partner: no row
    }
    pairs = paired_table.suffix_pairs(results, "-att")
    assert pairs == [("cvae", "cvae-att")]
    text = paired_table.paired_table(results, pairs, ["source_use", "generic_share", "sacrebleu"])
    rows = text.splitlines()
    assert rows[0] == "| A -> B | src nats | generic | sacreBLEU |" and len(rows) == 3
    # src nats: 2.0 -> 2.0 means, better on seed 1 only; generic: lower is better, again seed 1 only
    assert rows[2] == "| cvae -> cvae-att | 2.0 -> 2.0 (1/2) | 0.300 -> 0.250 (1/2) | – |"
    with pytest.raises(SystemExit, match="NAME-copy"):
        paired_table.suffix_pairs(results, "-copy")
    with pytest.raises(SystemExit, match="no model named lm"):
        paired_table.paired_table(results, [("cvae", "lm")], ["source_use"])


def test_paired_table_loads_results_and_a_ledger_and_refuses_a_model_twice(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"results": {"kla-wd-att": {"1": {"distinct_2": 0.004}}}}))
    (tmp_path / "ledger" / "kla-wd").mkdir(parents=True)
    for seed, d2 in ((1, 0.001), (2, 0.003)):
        (tmp_path / "ledger" / "kla-wd" / f"seed{seed}.json").write_text(json.dumps({"metrics": {"distinct_2": d2}}))
    loaded = paired_table.load([results, tmp_path / "ledger"])
    assert loaded == {"kla-wd-att": {"1": {"distinct_2": 0.004}},
                      "kla-wd": {"1": {"distinct_2": 0.001}, "2": {"distinct_2": 0.003}}}  # fmt: skip
    # only seed 1 is shared, so the means are over it alone: 0.001 -> 0.004, better on 1 of 1
    text = paired_table.paired_table(loaded, [("kla-wd", "kla-wd-att")], ["distinct_2"])
    assert text.splitlines()[2] == "| kla-wd -> kla-wd-att | 0.0010 -> 0.0040 (1/1) |"
    with pytest.raises(SystemExit, match="kla-wd-att also in an earlier input"):
        paired_table.load([results, results])
