"""The pretrained-reader tables: rows from compare results, meaning metrics merged in from a rescore, mean ± std.

    python studies/pretrained_table.py "ROW=results.json:MODEL[+rescore.jsonl]" ... [--paper-bleu]

Each ROW reads MODEL's seeds from a compare results.json; `+rescore.jsonl` adds the meaning-level metrics that
studies/meaning_rescore.sh wrote for runs scored without an encoder (one line per seed folder, matched by the
folder's seed). --paper-bleu shows the SLCVAE paper's BLEU (DailyDialog's protocol) instead of ours.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from slcvae.evaluation.report import aggregate, table


def row(spec: str) -> tuple[str, dict[str, dict]]:
    name, rest = spec.split("=", 1)
    source, _, rescore = rest.partition("+")
    path, model = source.rsplit(":", 1)
    seeds = json.loads(Path(path).read_text(encoding="utf-8"))["results"][model]
    for line in Path(rescore).read_text(encoding="utf-8").splitlines() if rescore else []:
        entry = json.loads(line)
        seed = re.search(r"seed(\d+)$", entry["run"].rstrip("/")).group(1)
        seeds[seed].update({k: v for k, v in entry["metrics"].items() if k.startswith(("semantic_", "meaning_"))})
    return name, seeds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rows", nargs="+")
    p.add_argument("--paper-bleu", action="store_true")
    args = p.parse_args()
    bleu = "paper_bleu" if args.paper_bleu else "bleu"
    columns = [("source_use", "src nats", 1), (f"{bleu}_precision", "BLEU-P", 1), (f"{bleu}_recall", "BLEU-R", 1),
               ("sacrebleu", "sacreBLEU", 1), ("distinct_2", "Dist-2", 1), ("generic_share", "generic", -1),
               ("semantic_precision", "sem-P", 1), ("semantic_recall", "sem-R", 1),
               ("semantic_diversity", "sem-div", 1), ("meaning_distinct", "meanings", 1),
               ("unique_per_source", "unique/src", 1), ("steps", "steps", 0), ("train_seconds", "train s", 0)]  # fmt: skip
    print(table(aggregate(dict(row(spec) for spec in args.rows)), columns))


if __name__ == "__main__":
    main()
