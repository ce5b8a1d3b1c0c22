"""Where the styles sit in z, and why the prior's draws fall on them unevenly.

    python studies/latent_modes.py --spec docs/results/schedule/base7.toml [--draws 200] [--sources 48]

For every finished run of a compare spec and every test source x with valid targets y_1..y_k:
q_j = q(z|x, y_j) (each target's posterior) and p = p(z|x) (the prior). `draws` z ~ p are decoded
greedily and matched to the targets as the scorer matches modes (`mode_key`). Printed per run, means
over sources:

- exp_cov: the mode coverage of 10 samples per source expected from the `draws` decoded ones, estimated
  without bias (`metrics.mode_coverage_at`). The scorer's coverage draws 10 samples once per source, so with 48 sources its
  sampling noise alone is ~0.02 (seed-to-seed spread of one model); this estimate, from `draws` samples,
  separates a model's evenness from that noise;
- decoded: the share of prior draws on the least and on the most drawn target (uniform: 1/k each),
  and the share that matches no target (invalid);
- nearest-q: the same shares when each draw is given to the target whose posterior has the highest
  density there (the aggregate posterior's partition of z), and how often the decoder agrees with it;
- d(q_j, p): the Mahalanobis distance of q_j's mean from the prior, sqrt(sum (mu_q - mu_p)^2 / var_p),
  its spread over a source's targets (max / min), and the rank correlation between a target's distance
  and its decoded share (negative: far styles are drawn less);
- sd_q / sd_p: the posteriors' width against the prior's, in the prior's active directions.

So an uneven draw can be read as the prior's mass split unevenly over the posteriors (nearest-q shares
uneven too) or as the decoder's partition of z disagreeing with the posteriors' (agreement low).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from slcvae.data.batching import collate, encode
from slcvae.data.corpus import Example, read_corpus
from slcvae.evaluation.metrics import mode_coverage_at, mode_key
from slcvae.generation import processors
from slcvae.generation.decode import sample_loop
from slcvae.loading import load_model_dir
from slcvae.models.modules import gaussian_nll
from slcvae.pipeline.compare import load_spec


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Rank correlation of two 1-d tensors (ties broken by position)."""
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = (ra.norm() * rb.norm()).item()
    return float((ra @ rb) / den) if den > 0 else 0.0


@torch.no_grad()
def source_stats(model, tokenizer, data_cfg, example, draws: int, n_samples: int = 10) -> dict:
    """One source: decoded and nearest-posterior shares per target, distances, widths; exp_cov: the mode coverage
    that `n_samples` independent draws would have in expectation (`metrics.mode_coverage_at`)."""
    k = len(example.targets)
    rows = [Example(example.source, [t]) for t in example.targets]
    batch = collate(encode(rows, tokenizer, data_cfg), range(k), tokenizer)
    ctx, memory = model.encoder.read(batch)  # [k, context], the same row k times (memory: with attention)
    mu_p, logvar_p = model.prior(ctx[:1])  # [1, latent]
    mu_q, logvar_q = model.posterior(torch.cat([ctx, model.encoder.target(batch)], -1))  # [k, latent]
    z = mu_p + torch.randn(draws, mu_p.shape[1]) * (0.5 * logvar_p).exp()  # [draws, latent] ~ p(z|x)
    # log q_j(z) for every draw and target: [draws, k]
    log_q = -torch.stack([gaussian_nll(z, mu_q[j : j + 1], logvar_q[j : j + 1]) for j in range(k)], 1)
    nearest = log_q.argmax(1)
    first = memory.index(torch.zeros(draws, dtype=torch.long)) if memory is not None else None
    h = model.decoder.init_state(torch.cat([ctx[:1].expand(draws, -1), z], -1), first)
    procs = processors.build(suppress=[tokenizer.unk_id], eos_id=tokenizer.eos_id, sampling=False)
    ids = sample_loop(model.step, h, tokenizer.bos_id, tokenizer.eos_id, data_cfg.max_target_len + 1, True, procs)
    keys = [mode_key(t) for t in example.targets]
    texts = [tokenizer.decode(row) for row in ids.tolist()]
    decoded = torch.tensor([keys.index(key) if key in keys else -1 for key in map(mode_key, texts)])
    share = torch.stack([(decoded == j).double().mean() for j in range(k)])
    share_nearest = torch.stack([(nearest == j).double().mean() for j in range(k)])
    var_p = logvar_p.exp()[0]
    dist = (((mu_q - mu_p) ** 2) / var_p).sum(-1).sqrt()  # [k]
    active = var_p.argsort()[-4:]  # the prior's widest directions: where the styles can sit
    width = ((0.5 * logvar_q[:, active]).exp() / (0.5 * logvar_p[0, active]).exp()).mean()
    valid = decoded >= 0
    return {
        "k": k,
        "exp_cov": mode_coverage_at(texts, example.targets, n_samples),
        "min": float(share.min()),
        "max": float(share.max()),
        "invalid": float((~valid).double().mean()),
        "near_min": float(share_nearest.min()),
        "near_max": float(share_nearest.max()),
        "agree": float((decoded[valid] == nearest[valid]).double().mean()) if valid.any() else 0.0,
        "dist": float(dist.mean()),
        "dist_ratio": float(dist.max() / dist.min().clamp(min=1e-6)),
        "rho": spearman(dist, share),
        "width": float(width),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, required=True, help="a compare spec whose runs have finished")
    ap.add_argument("--draws", type=int, default=200, help="prior draws per source")
    ap.add_argument("--sources", type=int, default=48, help="test sources to read (the first N)")
    ap.add_argument("--checkpoint", default="last", help="last or best")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    spec = load_spec(args.spec)
    test = [ex for ex in read_corpus(spec.test) if len(ex.targets) > 1][: args.sources]
    cols = ["exp_cov", "min", "max", "invalid", "near_min", "near_max", "agree", "dist", "dist_ratio", "rho", "width"]
    print("| model | seed | " + " | ".join(cols) + " |")
    print("|---|---|" + "---:|" * len(cols))
    for run in sorted((spec.out / "runs").glob("*/seed*")):
        if not (run / "summary.json").is_file():
            continue
        model, tokenizer, cfg = load_model_dir(run, args.checkpoint)
        if not getattr(model, "has_latent", False):
            continue
        model.eval()
        torch.manual_seed(args.seed)
        stats = [source_stats(model, tokenizer, cfg.data, ex, args.draws) for ex in test]
        means = {c: sum(s[c] for s in stats) / len(stats) for c in cols}
        print(f"| {run.parent.name} | {run.name} | " + " | ".join(f"{means[c]:.3f}" for c in cols) + " |", flush=True)


if __name__ == "__main__":
    main()
