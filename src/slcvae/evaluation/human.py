"""Human evaluation kit: a blind, shuffled rating sheet and the aggregation of raters' scores.

export  For each sampled source and each model, one row shows the source and the model's first
        k samples; rows are shuffled and named by a random id, so raters cannot tell the models
        apart. Raters fill fluency, coherence and diversity with integers 1-5 (the paper's three
        criteria; diversity judges the k responses as a set). The key (id -> model, source) goes
        to a separate file that raters never see.
import  Each rater returns a copy of the sheet. Per model and criterion: the mean over items of
        the raters' mean, a 95% confidence interval (normal approximation over items), and
        Krippendorff's alpha (ordinal) over all items as the inter-rater agreement.
"""

from __future__ import annotations

import csv
import json
import math
import random
import secrets
import statistics
from pathlib import Path

import numpy as np

from slcvae.errors import InputError
from slcvae.evaluation.metrics import read_predictions
from slcvae.extras import require

CRITERIA = ("fluency", "coherence", "diversity")
HEADER = ("id", "source", "responses", *CRITERIA)


def export(
    predictions: dict[str, Path], out_dir: Path, num_sources: int = 100, samples: int = 3, seed: int = 0
) -> tuple[Path, Path]:
    """Write OUT/sheet.csv (for raters) and OUT/key.json (kept apart). predictions: {model name: generate output}."""
    if len(predictions) < 2:
        raise InputError("--predictions", None, f"need at least 2 models to compare, got {len(predictions)}")
    if samples < 1 or num_sources < 1:
        raise InputError("--samples", None, "--samples and --sources must be >= 1")
    loaded = {name: read_predictions(path) for name, path in predictions.items()}
    first_name, first = next(iter(loaded.items()))
    for name, rows in loaded.items():
        if [src for src, _ in rows] != [src for src, _ in first]:
            raise InputError(
                predictions[name], 1, f"its sources differ from {predictions[first_name]} (same test file, same order?)"
            )
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(first)), min(num_sources, len(first))))
    items, key = [], {}
    for index in chosen:
        source = first[index][0]
        text = " / ".join(source) if isinstance(source, list) else str(source)
        for name, rows in loaded.items():
            item_id = secrets.token_hex(4)  # random, not derived from the seed: ids carry no model information
            while item_id in key:
                item_id = secrets.token_hex(4)
            responses = "\n".join(f"{k + 1}. {s}" for k, s in enumerate(rows[index][1][:samples]))
            items.append((item_id, text, responses))
            key[item_id] = {"model": name, "source_index": index}
    rng.shuffle(items)
    out_dir.mkdir(parents=True, exist_ok=True)
    sheet, key_path = out_dir / "sheet.csv", out_dir / "key.json"
    with open(sheet, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows((*item, "", "", "") for item in items)
    key_path.write_text(json.dumps({"criteria": CRITERIA, "scale": [1, 5], "items": key}, indent=2) + "\n", encoding="utf-8")
    return sheet, key_path


def read_ratings(path: Path, known: set[str]) -> dict[str, dict[str, int]]:
    """One rater's sheet -> {item id: {criterion: score}}; blank cells are items the rater skipped."""
    try:
        return _read_ratings(path, known)
    except UnicodeDecodeError as err:
        raise InputError(path, None, f"not valid UTF-8 (byte {err.start}); save the sheet as UTF-8 CSV") from None
    except csv.Error as err:
        raise InputError(path, None, f"not a readable CSV: {err}") from None


def _read_ratings(path: Path, known: set[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: spreadsheets save CSV with a byte-order mark
        reader = csv.DictReader(f)
        missing = [c for c in ("id", *CRITERIA) if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(path, 1, f"missing column(s) {', '.join(missing)}")
        for row in reader:
            line = reader.line_num
            if None in row or None in row.values():
                raise InputError(path, line, f"expected {len(reader.fieldnames)} cells, got a row of another length")
            if row["id"] not in known:
                raise InputError(path, line, f"unknown item id {row['id']!r} (a sheet from another export?)")
            scores = {}
            for c in CRITERIA:
                cell = (row[c] or "").strip()
                if not cell:
                    continue
                if cell not in ("1", "2", "3", "4", "5"):
                    raise InputError(path, line, f"{c} must be an integer 1-5 or blank, got {cell!r}")
                scores[c] = int(cell)
            out[row["id"]] = scores
    return out


def aggregate(key_path: Path, sheets: list[Path]) -> dict:
    """{"models": {model: {criterion: {mean, ci95, items}}}, "alpha": {criterion: alpha}, "raters": n}."""
    krippendorff = require("krippendorff", "human-eval import")

    try:
        key = json.loads(Path(key_path).read_text(encoding="utf-8"))["items"]
    except (OSError, json.JSONDecodeError, RecursionError, KeyError, TypeError) as err:
        raise InputError(key_path, 1, f"not a key file written by `human-eval export`: {err}") from None
    if not sheets:
        raise InputError("ratings", None, "give at least one rated sheet")
    raters = [read_ratings(Path(p), set(key)) for p in sheets]
    ids = sorted(key)
    result: dict = {"models": {}, "alpha": {}, "raters": len(raters)}
    for c in CRITERIA:
        matrix = np.array([[r.get(i, {}).get(c, np.nan) for i in ids] for r in raters], dtype=float)  # [rater, item]
        rated = ~np.isnan(matrix)
        pairable = (rated.sum(0) >= 2).sum()
        values = np.unique(matrix[rated])
        # alpha needs >= 2 raters on some item and >= 2 distinct values; otherwise it is undefined
        result["alpha"][c] = (
            float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal"))
            if pairable and len(values) > 1
            else None
        )
        per_model: dict[str, list[float]] = {}
        for j, item in enumerate(ids):
            if rated[:, j].any():
                per_model.setdefault(key[item]["model"], []).append(float(np.nanmean(matrix[:, j])))
        for model, scores in per_model.items():
            mean = statistics.fmean(scores)
            half = 1.96 * statistics.stdev(scores) / math.sqrt(len(scores)) if len(scores) > 1 else float("nan")
            result["models"].setdefault(model, {})[c] = {"mean": mean, "ci95": [mean - half, mean + half], "items": len(scores)}
    return result


def markdown(result: dict) -> str:
    lines = ["| model | " + " | ".join(CRITERIA) + " |", "|---|" + "---:|" * len(CRITERIA)]
    for model, crit in sorted(result["models"].items()):
        cells = []
        for c in CRITERIA:
            m = crit.get(c)
            cells.append(f"{m['mean']:.2f} [{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}]" if m else "–")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    alpha = ", ".join(f"{c} {a:.3f}" if a is not None else f"{c} undefined" for c, a in result["alpha"].items())
    return "\n".join(lines) + f"\n\n{result['raters']} rater(s); mean [95% CI]; Krippendorff's alpha (ordinal): {alpha}\n"
