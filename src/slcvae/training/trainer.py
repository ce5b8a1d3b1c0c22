"""The training loop: bucketed batches, per-phase Adam, validation, atomic best/last checkpoints.

`train()` knows models only through their interface: `phases`, `phases_at(step)`,
`optimizer_groups(lr)` and `forward(batch, step, phase) -> (outputs, losses)`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from slcvae.config import RESUME_FREE, Config, config_diff
from slcvae.data.batching import Batch, bucket_order, collate, encode, fit_tokenizer
from slcvae.data.corpus import read_pairs, split_valid
from slcvae.data.tokenizer import TextTokenizer
from slcvae.errors import InputError, TrainingDiverged
from slcvae.evaluation.validation import validate
from slcvae.extras import require
from slcvae.generation.config import for_model
from slcvae.io import OutputLock, fingerprint, write_json_atomic, write_text_atomic
from slcvae.loading import load_checkpoint, load_model_dir, load_run_checkpoint
from slcvae.models import Seq2Seq, build_model
from slcvae.training import distributed
from slcvae.training.checkpoint import save_atomic

console = Console(stderr=True)


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done (an SLCVAE step includes its labeling phase)
    epoch: int = 0
    batch_in_epoch: int = 0  # position inside the epoch's deterministic batch order
    best: float = math.inf  # best validation -ELBO so far (among checkpoints the model allows)
    stale: int = 0  # validations since the best one (among those the model allows): early stopping counts these
    seconds: float = 0.0  # training wall time over all (resumed) runs


def phase_step(
    net: torch.nn.Module,
    batch: Batch,
    step: int,
    phase: str,
    optim: torch.optim.Optimizer,
    params: list,
    grad_clip: float,
    loss_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """One update of one training phase: forward, backward of loss x loss_weight, gradient clipping, optimizer step.

    Returns the phase's losses; raises TrainingDiverged on a non-finite loss, before anything is updated.
    """
    _, losses = net(batch, step=step, phase=phase)
    if not torch.isfinite(losses["loss"]):
        raise TrainingDiverged(f"step {step}, phase {phase}: loss is {losses['loss'].item()}")
    optim.zero_grad(set_to_none=True)
    (losses["loss"] * loss_weight if loss_weight != 1.0 else losses["loss"]).backward()
    torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optim.step()
    return losses


def optimizers(groups: dict[str, list[dict]]) -> dict[str, torch.optim.Optimizer]:
    """One Adam per training phase. fused: one kernel per step for all parameters; at default sizes on one CPU
    thread 9% more CVAE + BOW steps per second and 19% more SLCVAE steps (two optimizers) than foreach
    (bench/paper_speed.py); the same update up to float rounding."""
    return {name: torch.optim.Adam(group, fused=True) for name, group in groups.items()}


def phase_params(groups: dict[str, list[dict]]) -> dict[str, list[torch.nn.Parameter]]:
    """Every parameter each phase updates, over its param groups: what the phase's gradient clipping sees."""
    return {phase: [p for g in phase_groups for p in g["params"]] for phase, phase_groups in groups.items()}


def train(cfg: Config, train_path: Path, valid_path: Path | None, out_dir: Path, resume: bool = False) -> dict:
    """Train `cfg.model_name` on `train_path`, validate on `valid_path`, write the run to `out_dir`.

    Returns the summary also written to `out_dir/summary.json`. Without `valid_path`, 5% of the training sources
    are held out for validation (`split_valid`, seeded and said in the log). The folder is locked for the run
    (OUT/.lock; a second writer gets an error naming this process). --resume refuses a config or training data
    other than the run's own, except the budget (RESUME_FREE).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, None, "--out names a file; it must be a folder (new, or a run to --resume)")
    valid_path = Path(valid_path) if valid_path is not None else None
    if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 holds the lock for all
        return Run(cfg, Path(train_path), valid_path, out_dir, resume).loop()
    with OutputLock.folder(out_dir):
        return Run(cfg, Path(train_path), valid_path, out_dir, resume).loop()


def _check_resume(out_dir: Path, cfg: Config, data: dict[str, Path]) -> Config:
    """The saved config, with the budget given now; an InputError naming every other difference."""
    saved = Config.load(out_dir / "config.json")
    diff = config_diff(saved, cfg)
    if diff:
        free = ", ".join(f"train.{k}" for k in RESUME_FREE)
        raise InputError(out_dir / "config.json", 1, f"--resume with another config ({'; '.join(diff)}): pass the run's own "
                         f"--config/--set (only {free} may change), or train into a new --out")  # fmt: skip
    for key in RESUME_FREE:
        setattr(saved.train, key, getattr(cfg.train, key))
    record = out_dir / "data.json"
    if record.is_file():  # runs from before the fingerprints have none
        try:
            known = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(record, 1, f"unreadable ({err})") from None
        for name, path in data.items():
            if name in known and fingerprint(path) != known[name]["fingerprint"]:
                was = f"{known[name]['path']}, {known[name]['fingerprint']['bytes']} bytes"
                raise InputError(path, None, f"differs from the {name} data of this run ({was}): --resume needs the same data")
    return saved


def read_data(train_path: Path, valid_path: Path | None) -> tuple[list, list, dict[str, Path]]:
    """(training pairs, validation pairs, the files they came from); a validation split when no file is given."""
    train_examples = read_pairs(train_path)
    if valid_path is not None:
        return train_examples, read_pairs(valid_path), {"train": train_path, "valid": valid_path}
    train_examples, valid_examples, said = split_valid(train_examples)
    console.print(f"valid: {said}")
    return train_examples, valid_examples, {"train": train_path}


class Run:
    """One training run: its data, model, optimizers, state and folder; `loop()` trains it and returns the summary."""

    def __init__(self, cfg: Config, train_path: Path, valid_path: Path | None, out_dir: Path, resume: bool):
        train_examples, valid_examples, files = read_data(train_path, valid_path)
        if resume:
            if not (out_dir / "last.pt").is_file():
                raise InputError(out_dir / "last.pt", 1, "no checkpoint to resume from")
            cfg = _check_resume(out_dir, cfg, files)
            tokenizer = TextTokenizer.load(out_dir)
        else:
            if (out_dir / "last.pt").exists():
                raise InputError(out_dir, None, "already holds a run: pass --resume to continue it, or choose another --out")
            if cfg.data.encoder:
                from slcvae.pretrained import bind

                bind(cfg.data)  # the run records which weights its vectors came from
            tokenizer = fit_tokenizer(train_examples, cfg.data)
        self.train_data = encode(train_examples, tokenizer, cfg.data)
        self.valid_data = encode(valid_examples, tokenizer, cfg.data)
        for name, data in (("train", self.train_data), ("valid", self.valid_data)):
            if data.truncated:
                console.print(f"[yellow]{name}: {data.truncated} turns or targets truncated to the configured maximum")
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        self.cfg, self.tokenizer, self.out_dir = cfg, tokenizer, out_dir
        self.ctx = ctx = distributed.setup(cfg.train.device)
        torch.manual_seed(cfg.train.seed)  # the same initialization on every rank
        self.model = build_model(cfg, tokenizer.vocab_size, tokenizer.unk_id).to(ctx.device)
        self.groups = self.model.optimizer_groups(cfg.train.lr)
        self.params = phase_params(self.groups)
        self.optims = optimizers(self.groups)
        self.state = TrainState()
        if ctx.world > 1:
            torch.manual_seed(cfg.train.seed + 1000 * ctx.rank)  # but different z noise per rank
        if resume:
            self.restore()
        elif ctx.main:
            self.create(files)
        self.net = distributed.wrap(self.model, ctx)  # what forward/backward run through; `model` stays the plain module
        self.writer = None
        if cfg.train.tensorboard and ctx.main:
            require("tensorboard", "train.tensorboard = true")
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tb"), purge_step=self.state.step)
        self.metrics: dict[str, float] = {}
        self.running: dict[str, list[float]] = defaultdict(list)
        self.mark = time.monotonic()  # training time since here is not yet in state.seconds

    def restore(self) -> None:
        ckpt = load_checkpoint(self.out_dir / "last.pt", self.ctx.device)
        self.model.load_state_dict(ckpt["model"])
        for name, opt in self.optims.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        self.state = TrainState(**ckpt["state"])
        if len(ckpt["rng"]) != self.ctx.world:
            said = f"saved by {len(ckpt['rng'])} process(es), resumed with {self.ctx.world}"
            raise InputError(self.out_dir / "last.pt", 1, said)
        torch.set_rng_state(ckpt["rng"][self.ctx.rank].cpu())
        if self.ctx.main:
            _trim_log(self.out_dir / "log.jsonl", self.state.step)

    def create(self, files: dict[str, Path]) -> None:
        out_dir = self.out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "log.jsonl").unlink(missing_ok=True)  # a run killed before its first checkpoint left one
        self.cfg.save(out_dir / "config.json")
        self.tokenizer.save(out_dir)
        for_model(self.cfg.model_name).save(out_dir)
        write_json_atomic(out_dir / "data.json", {k: {"path": str(p), "fingerprint": fingerprint(p)} for k, p in files.items()})

    def budget_spent(self) -> float:
        """Share of the budget spent: the larger of steps / max_steps and training time / max_minutes."""
        t = self.cfg.train
        seconds = self.state.seconds + time.monotonic() - self.mark
        by_time = seconds / (t.max_minutes * 60) if t.max_minutes > 0 else 0.0
        return min(1.0, max(self.state.step / max(1, t.max_steps), by_time))

    def checkpoint(self) -> None:
        """Validate, write last.pt (and best.pt when the bound improved), log to TensorBoard; rank 0 only."""
        ctx, state = self.ctx, self.state
        rng = distributed.gather_rng(ctx)  # before validation, which runs on rank 0 only
        if not ctx.main:
            distributed.barrier(ctx)
            return
        t = self.cfg.train
        self.metrics = metrics = validate(self.model, self.valid_data, self.tokenizer, t.batch_size, state.step, t.iw_samples)
        state.seconds += time.monotonic() - self.mark
        self.mark = time.monotonic()
        selectable = self.model.selectable(state.step)
        improved = selectable and metrics["elbo"] < state.best
        if improved:
            state.best, state.stale = metrics["elbo"], 0
        elif selectable:
            state.stale += 1
        ckpt = {"model": self.model.state_dict(), "optimizers": {k: o.state_dict() for k, o in self.optims.items()},
                "state": asdict(state), "rng": rng, "metrics": metrics}  # fmt: skip
        save_atomic(ckpt, self.out_dir / "last.pt")
        if improved:
            save_atomic(ckpt, self.out_dir / "best.pt")
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(f"valid/{k}", v, state.step)
            self.writer.flush()
        distributed.barrier(ctx)

    def step(self, whole: list[int]) -> None:
        """One optimizer step per phase the model runs now, on this rank's share of the global batch `whole`."""
        ctx = self.ctx
        rows = whole[ctx.rank :: ctx.world]
        # DDP averages ranks equally: weight each rank's per-row mean loss by its share of the rows, so the
        # update is the global batch's mean even when shards differ; a rank left without rows (a final
        # batch smaller than the world) runs one stand-in row at weight 0, as every rank must join backward
        weight = len(rows) * ctx.world / len(whole)
        batch = collate(self.train_data, rows if len(rows) else whole[:1], self.tokenizer).to(ctx.device)
        self.model.train()
        self.model.observe(self.state.step, self.budget_spent())
        for phase in self.model.phases_at(self.state.step):
            try:
                losses = phase_step(self.net, batch, self.state.step, phase, self.optims[phase],
                                    self.params[phase], self.cfg.train.grad_clip,
                                    weight if ctx.world > 1 else 1.0)  # fmt: skip
            except TrainingDiverged as err:
                raise TrainingDiverged(f"{err}; the last good checkpoint is {self.out_dir / 'last.pt'}") from None
            for k, v in losses.items():
                self.running[f"{phase}/{k}"].append(v.item())

    def log(self) -> str:
        """Write the running means to log.jsonl and TensorBoard; returns them as the progress bar's text."""
        means = distributed.mean({k: float(np.mean(v)) for k, v in self.running.items()}, self.ctx)
        self.running.clear()
        if self.ctx.main:
            with open(self.out_dir / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": self.state.step, **means}) + "\n")
        if self.writer is not None:
            for k, v in means.items():
                self.writer.add_scalar(f"train/{k}", v, self.state.step)
        return " ".join(f"{k.split('/')[-1]}={v:.3g}" for k, v in means.items() if not k.endswith("/loss"))

    def loop(self) -> dict:
        """Train until max_steps, max_minutes or early stopping; checkpoint every eval_every steps and at the end."""
        t, state, ctx = self.cfg.train, self.state, self.ctx
        deadline = time.monotonic() + t.max_minutes * 60 if t.max_minutes > 0 else math.inf
        lengths = self.train_data.lengths()
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            TextColumn("{task.fields[info]}"), console=console, disable=not (t.progress and ctx.main),
                            transient=False)  # fmt: skip
        with progress:
            task = progress.add_task(self.cfg.model_name, total=t.max_steps, completed=state.step, info="")
            stop = state.step >= t.max_steps
            while not stop:
                batches = bucket_order(lengths, t.batch_size, t.bucket_batches, t.seed, state.epoch)
                while state.batch_in_epoch < len(batches) and not stop:
                    self.step(batches[state.batch_in_epoch])
                    state.batch_in_epoch += 1
                    state.step += 1
                    if state.step % t.log_every == 0:
                        progress.update(task, info=self.log())
                    progress.update(task, completed=state.step)
                    stop = state.step >= t.max_steps or distributed.any_rank(time.monotonic() > deadline, ctx)
                    if stop or state.step % t.eval_every == 0:
                        self.checkpoint()
                        converged = t.patience > 0 and state.stale >= t.patience  # rank 0 validated: it decides
                        stop = stop or distributed.any_rank(converged and ctx.main, ctx)
                if state.batch_in_epoch >= len(batches):
                    state.epoch += 1
                    state.batch_in_epoch = 0
        if self.writer is not None:
            self.writer.close()
        distributed.cleanup(ctx)
        return self.finish()

    def finish(self) -> dict:
        """The run's summary (summary.json), with its warnings printed."""
        t, state, model = self.cfg.train, self.state, self.model
        summary = {
            "model": self.cfg.model_name,
            "steps": state.step,
            "epochs": state.epoch + state.batch_in_epoch / max(1, math.ceil(len(self.train_data) / t.batch_size)),
            "train_seconds": round(state.seconds, 1),
            "valid": self.metrics,
            "best_valid_elbo": state.best if math.isfinite(state.best) else None,  # None: no best.pt (see warnings)
            "early_stopped": t.patience > 0 and state.stale >= t.patience,
            "train_pairs": len(self.train_data),
            "vocab": self.tokenizer.vocab_size,
            "parameters": sum(p.numel() for p in model.parameters()),
            **model.schedule(state.step),
            "warnings": run_warnings(model, self.metrics, state),
        }
        if self.ctx.main:
            for warning in summary["warnings"]:
                console.print(f"[yellow]warning: {warning}")
            write_text_atomic(self.out_dir / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
        return summary


# Below this KL (nats per source) the posterior is the prior: the decoder ignores z (KL vanishing).
KL_VANISHED = 0.1
# Below this source use (nats per target, evaluation/source_use.py) the outputs do not depend on the source.
SOURCE_IGNORED = 0.1


def run_warnings(model: Seq2Seq, metrics: dict[str, float], state: TrainState) -> list[str]:
    """Plain statements about a finished run that a user would otherwise only find in the logs."""
    warnings = []
    if model.has_latent and metrics.get("kl", math.inf) < KL_VANISHED:
        warnings.append(
            f"KL stayed near zero ({metrics['kl']:.3g} nats at step {state.step}): the decoder ignores z, "
            "so samples from the prior will be alike (KL vanishing)"
        )
    if model.cfg.model_name != "lm" and metrics.get("source_use", math.inf) < SOURCE_IGNORED:  # the LM reads no source
        warnings.append(
            f"the model takes {metrics['source_use']:.3g} nats per target from its source (validation, step {state.step}): "
            "its outputs barely depend on the source"
            + (
                "; try --set model.attention=true (the decoder reads the source only in its first state)"
                if not model.cfg.model.attention
                else "; it may need more steps"
            )
        )
    schedule = model.schedule(state.step)
    if schedule.get("label_gated"):
        warnings.append(
            f"the labeling loss never started: z stayed in use (training KL {schedule['training_kl']:.3g} nats, at or above "
            f"slcvae.gate_kl = {model.cfg.slcvae.gate_kl:g}), so this run is its CVAE + BOW base; "
            "set slcvae.gate_kl=0 for labels regardless"
        )
    elif schedule.get("label_start_step", 0) is None:
        warnings.append(
            f"the run ended at step {state.step}, before the labeling loss started: it trained as a plain CVAE "
            "(give it more steps or minutes)"
        )
    if not math.isfinite(state.best):
        warnings.append("no checkpoint was eligible as best.pt; generate and evaluate will use last.pt")
    return warnings


def _trim_log(path: Path, step: int) -> None:
    """Drop the log lines written after the checkpoint a run resumes from: the resumed run logs those steps again."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if _logged_step(line) <= step]
    if len(kept) < len(lines):
        write_text_atomic(path, "".join(kept))


def _logged_step(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):  # a line torn by the kill: after the checkpoint too
        return math.inf


__all__ = ["load_model_dir", "load_run_checkpoint", "train", "validate"]  # the loaders and validation live in loading.py
# and evaluation/validation.py; re-exported for the scripts that import them from here
