"""The README's own-data quick start, run as written on a TSV with a header row and no validation file.

The commands are read from the README itself (between the quickstart markers), so the README cannot drift from
what works. Only two things are added, to keep the test fast: small network sizes and a step budget on `train`.
`serve` is exercised through its app (one request) instead of a listening server.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

import slcvae
from slcvae.cli.main import app
from slcvae.data.corpus import read_corpus, read_pairs, split_valid
from slcvae.serving.app import create_app

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--max-steps", "20", "--set", "train.eval_every=10", "--set", "train.progress=false"] + [
    arg for size in ("embedding=16", "utterance=16", "context=24", "latent=4", "decoder=24", "mlp=16")
    for arg in ("--set", f"model.{size}")
]  # fmt: skip


def quickstart_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- quickstart")[1].split("<!-- /quickstart -->")[0]
    block = block.split("```bash\n")[1].split("```")[0].replace("\\\n", " ")
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


def test_the_readme_quick_start_runs_as_written(tmp_path, synth_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pairs = read_corpus(synth_dir / "train.tsv")[:150]
    rows = ["source\ttarget"] + [f"{ex.source_text}\t{t}" for ex in pairs for t in ex.targets]
    Path("pairs.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    held = read_corpus(synth_dir / "test.jsonl")[:6]
    Path("held_out.tsv").write_text("".join(f"{ex.source_text}\t{ex.targets[0]}\n" for ex in held), encoding="utf-8")
    commands = quickstart_commands()
    assert [c[:2] for c in commands] == [["slcvae", "train"], ["slcvae", "generate"], ["slcvae", "evaluate"],
                                         ["slcvae", "export"], ["slcvae", "serve"]]  # fmt: skip
    runner = CliRunner()
    for command in commands[:4]:
        args = command[1:] + (FAST if command[1] == "train" else [])
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (command, result.output)
        if command[1] == "train":
            assert "held out 8 of 150 training sources" in result.output  # 5%, said in the log
            summary = json.loads(Path("runs/mine/summary.json").read_text())
            train, valid, _ = split_valid(read_pairs("pairs.tsv"))  # the header row is not a pair
            assert summary["train_pairs"] == len(train) == len(rows) - 1 - len(valid)
            cfg = json.loads(Path("runs/mine/config.json").read_text())
            assert (cfg["data"]["tokenizer"], cfg["model"]["attention"], cfg["model"]["copy"]) == ("bpe", True, True)
        if command[1] == "generate":
            lines = [json.loads(line) for line in Path("outputs.jsonl").read_text().splitlines()]
            assert len(lines) == 6 and all(5 <= line["drawn"] <= 25 for line in lines)
            assert all(len(set(line["samples"])) == len(line["samples"]) for line in lines)  # distinct
            assert all(len(line["samples"]) == 5 or line["drawn"] == 25 for line in lines)
        if command[1] == "evaluate":
            assert "bleu_precision" in result.output and "source_use" in result.output
    assert (Path("models/mine") / "generation_config.json").is_file()
    gen = slcvae.Generator.from_pretrained(commands[4][commands[4].index("--model-dir") + 1], seed=0)
    with TestClient(create_app(gen)) as client:
        reply = client.post("/v1/generate", json={"sources": [held[0].source_text], "n": 3, "do_sample": True})
    assert reply.status_code == 200 and len(reply.json()["samples"][0]) == 3
