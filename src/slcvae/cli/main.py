"""`slcvae` command line: synth, prepare, train, generate, evaluate, compare, human-eval, demo, serve, export, bench.

Bad input never shows a traceback: one line `FILE:LINE: what is wrong` on stderr, exit code 2.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from slcvae.errors import InputError, TrainingDiverged

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[data] [model]" must print as written, not as markup
    help="Diverse conditional text generation with Self-Labeling CVAEs and their baselines.",
)


DEBUG = {"on": False}  # --debug: let errors through with their traceback


@app.callback()
def options(debug: Annotated[bool, typer.Option("--debug", help="show an error's traceback, not one line")] = False):
    """Diverse conditional text generation with Self-Labeling CVAEs and their baselines."""
    DEBUG["on"] = debug


def boundary(fn):
    """Turn InputError and OSError into one stderr line and exit code 2, a diverged training into exit code 1
    (--debug: the traceback instead)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (InputError, TrainingDiverged, OSError) as err:
            if DEBUG["on"]:
                raise
            if isinstance(err, InputError):
                message, code = str(err), 2
            elif isinstance(err, TrainingDiverged):
                message, code = f"training diverged: {err}", 1
            else:  # disk full, permissions, a folder where a file was expected
                message, code = (f"{err.filename}: " if err.filename else "") + str(err.strerror or err), 2
            print(f"error: {message}", file=sys.stderr)
            raise typer.Exit(code) from None

    return wrapper


@app.command(epilog="Example: slcvae synth --out data/synth")
@boundary
def synth(
    out: Annotated[Path, typer.Option(help="folder for train.tsv, valid.jsonl, test.jsonl")],
    seed: Annotated[int, typer.Option(help="seed of the split and the style draws")] = 0,
):
    """Write the synthetic one-to-many corpus (4 known valid targets per source)."""
    from slcvae.data.synth import synth as run

    counts = run(out, seed)
    print(json.dumps(counts))


@app.command(epilog="Example: slcvae prepare dailydialog ../shared/data/dailydialog data/dd --context-turns 3")
@boundary
def prepare(
    corpus: Annotated[str, typer.Argument(help="dailydialog | webnlg | advertisegen")],
    src: Annotated[Path, typer.Argument(help="the corpus folder, e.g. ../shared/data/dailydialog")],
    out_dir: Annotated[Path, typer.Argument(help="folder for train/valid/test.jsonl")],
    context_turns: Annotated[int, typer.Option(help="dailydialog: previous turns kept as the source")] = 10,
    windows: Annotated[
        int, typer.Option(help="dailydialog: the SLCVAE paper's rows, windows of at most W utterances (6); 0 = every turn")
    ] = 0,
):
    """Convert a real corpus to the project's JSONL format."""
    from slcvae.data.prepare import prepare as run

    print(json.dumps(run(corpus, src, out_dir, context_turns, windows)))


@app.command(
    epilog="Example: slcvae train --model slcvae --train data/synth/train.tsv --valid data/synth/valid.jsonl "
    "--out runs/slcvae --set train.max_steps=2000 --set slcvae.label_weight=0.5   "
    "(several processes: torchrun --nproc_per_node=2 -m slcvae train ...)"
)
@boundary
def train(
    model: Annotated[str, typer.Option(help="seq2seq | cvae | cvae-anneal | cvae-freebits | cvae-wdrop | cvae-bow | slcvae")],
    train: Annotated[Path, typer.Option("--train", help="training corpus (.tsv or .jsonl)")],
    out: Annotated[Path, typer.Option(help="run folder: config, tokenizer, checkpoints, TensorBoard logs")],
    valid: Annotated[
        Path | None, typer.Option(help="validation corpus (.tsv or .jsonl); omitted: 5% of the training sources, seed 0")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with [data] [model] [cvae] [slcvae] [train] sections")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override one field: section.key=value (repeatable)")] = None,
    max_steps: Annotated[int | None, typer.Option(help="stop after this many steps")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="stop (and checkpoint) after this many minutes")] = None,
    seed: Annotated[int | None, typer.Option(help="seed for initialization, data order and sampling")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in --out exactly where it stopped")] = False,
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N | auto")] = None,
):
    """Train a model; best.pt and last.pt land in --out."""
    from slcvae.config import build_config
    from slcvae.training import train as run

    sets = list(set_ or [])
    for key, value in (("max_steps", max_steps), ("max_minutes", max_minutes), ("seed", seed), ("device", device)):
        if value is not None:
            sets.append(f"train.{key}={json.dumps(value) if isinstance(value, str) else value}")
    cfg = build_config(model, config, sets)
    summary = run(cfg, train, valid, out, resume=resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        print(json.dumps(summary))


def generation_options(fn):
    """Give a command one option per GenerationConfig field (--num-return-sequences, --do-sample/--no-do-sample, ...),
    passed to it as **options with None where not given, so a model folder's generation_config.json fills the rest."""
    import dataclasses
    import inspect

    from slcvae.generation.config import SPELL_CLI, TYPES, GenerationConfig

    params = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.kind != p.VAR_KEYWORD]
    for f in dataclasses.fields(GenerationConfig):
        kind = TYPES[f.name]
        names = [SPELL_CLI(f.name)] + [SPELL_CLI(a) if len(a) > 1 else f"-{a}" for a in f.metadata["aliases"]]
        if kind is bool:
            names = [f"{names[0]}/--no-{f.name.replace('_', '-')}"]
        info = typer.Option(*names, help=f"{f.metadata['help']} [library default: {f.default}]", show_default=False)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[kind | None, info]))  # fmt: skip
    fn.__signature__ = inspect.Signature(params)
    fn.__annotations__ = {p.name: p.annotation for p in params}
    return fn


@app.command(
    epilog="Example: slcvae generate --model-dir runs/slcvae --input data/synth/test.jsonl "
    "--output runs/slcvae/test.pred.jsonl --num-return-sequences 10 --do-sample --top-p 0.9 --distinct"
)
@boundary
@generation_options
def generate(
    model_dir: Annotated[Path, typer.Option(help="a folder written by `slcvae train` or `slcvae export`")],
    input: Annotated[Path, typer.Option(help="sources (.tsv or .jsonl; targets optional, needed by --latent posterior)")],
    output: Annotated[Path, typer.Option(help="JSONL: one {source, samples} per distinct input source")],
    checkpoint: Annotated[str, typer.Option(help="best | last")] = "best",
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N | auto")] = "cpu",
    resume: Annotated[bool, typer.Option(help="continue a partial --output: keep its complete lines, generate the rest")] = False,
    **options,
):
    """Generate N outputs per source, written as they are made (one line per source, flushed per chunk).

    Decoding options start from the model folder's generation_config.json; chunk c of --batch-size sources uses
    --seed + c."""
    from slcvae.data.corpus import read_corpus
    from slcvae.generation.config import SPELL_CLI, build
    from slcvae.loading import load_generation_config, load_model_dir, resolve_device
    from slcvae.pipeline import generate_file, load_lm

    if checkpoint not in ("best", "last"):
        raise InputError("--checkpoint", None, f"must be best or last, got {checkpoint!r}")
    if output.is_dir():
        raise InputError(output, None, "--output names a folder; it must be a file (JSONL)")
    examples = read_corpus(input, require_target=options["latent"] == "posterior")  # before the slow part
    model, tokenizer, cfg = load_model_dir(model_dir, checkpoint)
    gen = build(options, load_generation_config(model_dir, cfg.model_name), SPELL_CLI)
    if gen.latent == "posterior" and options["latent"] is None:  # the folder's default: its targets are needed too
        examples = read_corpus(input, require_target=True)
    model.to(resolve_device(device))
    anti_lm = load_lm(Path(gen.lm), tokenizer) if gen.decode == "mmi" else None
    _, first = generate_file(model, tokenizer, cfg, examples, gen, output, anti_lm, resume, chunk=gen.batch_size,
                             progress=True, spell=SPELL_CLI)  # fmt: skip
    how = f" (resumed after {first})" if resume else ""
    print(f"wrote {len(examples)} sources x {gen.num_return_sequences} samples to {output}{how}", file=sys.stderr)


@app.command(
    epilog="Example: slcvae evaluate --predictions runs/slcvae/test.pred.jsonl --references data/synth/test.jsonl "
    "--model-dir runs/slcvae --json"
)
@boundary
def evaluate(
    predictions: Annotated[Path, typer.Option(help="`slcvae generate` output")],
    references: Annotated[Path, typer.Option(help="the corpus the predictions were generated from")],
    model_dir: Annotated[Path | None, typer.Option(help="also score the model's latent health on --references")] = None,
    checkpoint: Annotated[str, typer.Option(help="with --model-dir: best | last")] = "best",
    iw_samples: Annotated[int, typer.Option(help="with --model-dir: importance samples for the NLL bound")] = 20,
    encoder: Annotated[
        str | None,
        typer.Option(help="also score meaning with this sentence encoder: a Hugging Face folder or all-MiniLM-L6-v2"),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
):
    """Score N samples per source: BLEU-1..4 precision/recall, sacreBLEU, distinct, self-BLEU, modes;
    with --model-dir also KL, active units, mutual information and importance-weighted NLL/perplexity."""
    from slcvae.evaluation import score_files

    metrics = score_files(predictions, references, model_dir, checkpoint, iw_samples, encoder)
    if json_:
        print(json.dumps(metrics))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("metric", "value")
        for k, v in metrics.items():
            table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
        Console().print(table)


@app.command(epilog="Example: slcvae compare --spec configs/compare/synth.toml   (run it again to resume)")
@boundary
def compare(
    spec: Annotated[Path, typer.Option(help="TOML: corpus, budget, seeds, [models] (format: README, `slcvae compare`)")],
    only: Annotated[
        list[str] | None,
        typer.Option(help="Only this [models] entry and what it needs (repeatable): report some rows of a long sweep first"),
    ] = None,
    seed: Annotated[list[int] | None, typer.Option(help="Only this seed of the spec's (repeatable)")] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="train on cpu | cuda | cuda:N | auto (not part of a run's identity: "
            "a run started on one device resumes on another)"
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="runs at a time, instead of the spec's (a machine with more cores)")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="write into this folder instead of the spec's `out` (parts of one spec side by side)"),
    ] = None,
    split: Annotated[
        str,
        typer.Option(help="score on test, or on valid to choose a setting (results.valid.json, report.valid.md)"),
    ] = "test",
):
    """Train models x seeds at an equal budget, score them all, write results.json, report.md and plots.

    Resumable: finished runs are skipped, interrupted ones continue from their last checkpoint."""
    from slcvae.pipeline.compare import run

    run(spec, only, seed, device=device, workers=workers, out=out, split=split)


human_eval = typer.Typer(no_args_is_help=True, help="Blind human evaluation: export a rating sheet, import the ratings.")
app.add_typer(human_eval, name="human-eval")


@human_eval.command(
    "export",
    epilog="Example: slcvae human-eval export --predictions cvae=runs/cvae/test.pred.jsonl "
    "--predictions slcvae=runs/slcvae/test.pred.jsonl --out human/ --sources 100 --samples 3",
)
@boundary
def human_export(
    predictions: Annotated[list[str], typer.Option(help="NAME=PATH of a `slcvae generate` output (repeat per model)")],
    out: Annotated[Path, typer.Option(help="folder for sheet.csv (to raters) and key.json (keep apart)")],
    sources: Annotated[int, typer.Option(help="sources drawn at random")] = 100,
    samples: Annotated[int, typer.Option(help="responses shown per model and source")] = 3,
    seed: Annotated[int, typer.Option(help="seed of the source draw and the row order")] = 0,
):
    """Write a blind, shuffled CSV (model names hidden) for raters to score fluency, coherence, diversity 1-5."""
    from slcvae.evaluation.human import export

    named = {}
    for item in predictions:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError("--predictions", None, f"expected NAME=PATH, got {item!r}")
        if name in named:
            raise InputError("--predictions", None, f"model name {name!r} given twice")
        named[name] = Path(path)
    sheet, key = export(named, out, sources, samples, seed)
    print(f"wrote {sheet} (give one copy to each rater) and {key} (keep it from the raters)", file=sys.stderr)


@human_eval.command("import", epilog="Example: slcvae human-eval import --key human/key.json rater1.csv rater2.csv rater3.csv")
@boundary
def human_import(
    ratings: Annotated[list[Path], typer.Argument(help="the raters' filled copies of sheet.csv")],
    key: Annotated[Path, typer.Option(help="key.json written by export")],
    json_: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
):
    """Per model and criterion: mean with a 95% CI; inter-rater agreement as Krippendorff's alpha."""
    from slcvae.evaluation.human import aggregate, markdown

    result = aggregate(key, list(ratings))
    print(json.dumps(result) if json_ else markdown(result))


@app.command(epilog="Example: slcvae demo --out runs/demo")
@boundary
def demo(
    out: Annotated[Path, typer.Option(help="folder for the corpus, models, table and plot")] = Path("runs/demo"),
    max_minutes: Annotated[float, typer.Option(help="time cap per model, in minutes (the budget is 3,000 steps)")] = 4.0,
    workers: Annotated[int, typer.Option(help="models trained at once, one thread each")] = 2,
):
    """Synthetic corpus -> train seq2seq, cvae, cvae-bow, slcvae -> 10 samples per test source -> table + plot."""
    from slcvae.pipeline.demo import run

    if workers < 1:
        raise InputError("--workers", None, f"must be >= 1, got {workers}")
    run(out, max_minutes, workers)


@app.command(
    epilog="Example: slcvae serve --model-dir runs/demo/runs/slcvae/seed1234 --port 8000   (then open http://127.0.0.1:8000/)"
)
@boundary
def serve(
    model_dir: Annotated[Path, typer.Option(help="a `slcvae train --out` folder or a folder written by `slcvae export`")],
    host: Annotated[str, typer.Option(help="address to listen on; 127.0.0.1 keeps it on this machine")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N | auto")] = "cpu",
    checkpoint: Annotated[str, typer.Option(help="run folders: best (falls back to last) or last")] = "best",
    max_batch_sources: Annotated[int, typer.Option(help="sources decoded in one forward pass, across requests")] = 256,
    max_wait_ms: Annotated[float, typer.Option(help="how long a batch waits for more requests")] = 5.0,
    threads: Annotated[int, typer.Option(help="torch threads for generation (0 = torch's default)")] = 0,
    lm: Annotated[
        list[Path] | None, typer.Option(help="a `--model lm` folder requests may name as lm for MMI (repeatable)")
    ] = None,
):
    """Serve a model over HTTP: POST /v1/generate (batched), GET /health, GET /v1/model, a web page at /, docs at /docs."""
    import torch

    from slcvae.extras import require

    uvicorn = require("uvicorn", "slcvae serve")
    require("fastapi", "slcvae serve")
    from slcvae.generator import Generator
    from slcvae.serving.app import ServeConfig, create_app

    if not 0 < port < 65536:
        raise InputError("--port", None, f"must be in 1..65535, got {port}")
    if max_batch_sources < 1 or max_wait_ms < 0:
        raise InputError(
            "--max-batch-sources", None, f"needs >= 1 sources and --max-wait-ms >= 0, got {max_batch_sources}, {max_wait_ms}"
        )
    if threads:
        torch.set_num_threads(threads)
    gen = Generator.from_pretrained(model_dir, checkpoint=checkpoint, device=device)
    for folder in lm or []:
        gen.language_model(folder)  # loaded and checked now, not at the first request
    cfg = ServeConfig(max_batch_sources=max_batch_sources, max_wait_ms=max_wait_ms, lms=tuple(str(p) for p in lm or []))
    uvicorn.run(create_app(gen, cfg, name=model_dir.name), host=host, port=port, log_level="warning")


@app.command(epilog="Example: slcvae export --model-dir runs/demo/runs/slcvae/seed1234 --out models/demo-slcvae")
@boundary
def export(
    model_dir: Annotated[Path, typer.Option(help="a `slcvae train --out` folder")],
    out: Annotated[Path, typer.Option(help="the self-contained model folder to write (safetensors + JSON)")],
    checkpoint: Annotated[str, typer.Option(help="best (falls back to last) or last")] = "best",
):
    """Write a run's model as a self-contained folder for `slcvae.Generator.from_pretrained` (no optimizer, no pickles)."""
    from slcvae.generator import Generator

    print(Generator.from_pretrained(model_dir, checkpoint=checkpoint).save_pretrained(out))


@app.command(epilog="Example: slcvae bench --json --threads 2")
@boundary
def bench(
    json_: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    threads: Annotated[int, typer.Option(help="torch threads (0 = torch's default)")] = 0,
    repeats: Annotated[int, typer.Option(help="timed repetitions per figure (median)")] = 5,
):
    """Training and generation throughput against a straightforward baseline (slcvae/benchmark/throughput.py)."""
    from slcvae.benchmark.throughput import main as run_bench

    run_bench(["--threads", str(threads), "--repeats", str(repeats), *(["--json"] if json_ else [])])


def main() -> None:
    app()


if __name__ == "__main__":
    main()
