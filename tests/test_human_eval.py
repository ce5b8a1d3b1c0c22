"""Human evaluation kit: blind export, then import with means, CIs and Krippendorff's alpha."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from slcvae.cli.main import app
from slcvae.evaluation.human import aggregate, export

runner = CliRunner()
# Krippendorff's textbook example (4 raters x 12 units, blanks missing): ordinal alpha 0.815
TEXTBOOK = [
    "1 2 3 3 2 1 4 1 2 . . .",
    "1 2 3 3 2 2 4 1 2 5 . 3",
    ". 3 3 3 2 3 4 2 2 5 1 .",
    "1 2 3 3 2 4 4 1 2 5 1 .",
]


def predictions(tmp_path, name, samples):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"source": f"s{i}", "samples": s}) + "\n" for i, s in enumerate(samples)))
    return path


def test_export_is_blind_and_import_round_trips(tmp_path):
    a = predictions(tmp_path, "a", [[f"a{i} x", f"a{i} y", "z"] for i in range(6)])
    b = predictions(tmp_path, "b", [[f"b{i} x", "q", "w"] for i in range(6)])
    r = runner.invoke(app, ["human-eval", "export", "--predictions", f"cvae={a}", "--predictions", f"slcvae={b}",
                            "--out", str(tmp_path / "h"), "--sources", "6", "--samples", "2"])  # fmt: skip
    assert r.exit_code == 0, r.output
    sheet = (tmp_path / "h" / "sheet.csv").read_text()
    assert "cvae" not in sheet and "slcvae" not in sheet  # blind: no model names on the sheet
    with open(tmp_path / "h" / "sheet.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    key = json.loads((tmp_path / "h" / "key.json").read_text())["items"]
    assert len(rows) == 12 and {row["id"] for row in rows} == set(key)
    assert all(row["responses"].count("\n") == 1 for row in rows)  # 2 responses each
    assert [key[row["id"]]["model"] for row in rows] != ["cvae", "slcvae"] * 6  # shuffled, not interleaved
    # two raters: cvae items get 2 everywhere, slcvae items 4 (rater 1) and 5 (rater 2), diversity blank for one
    for rater, high in ((1, "4"), (2, "5")):
        with open(tmp_path / f"r{rater}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            for row in rows:
                score = "2" if key[row["id"]]["model"] == "cvae" else high
                w.writerow({**row, "fluency": score, "coherence": score, "diversity": score if rater == 1 else ""})
    r = runner.invoke(app, ["human-eval", "import", "--key", str(tmp_path / "h" / "key.json"),
                            str(tmp_path / "r1.csv"), str(tmp_path / "r2.csv"), "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["raters"] == 2
    assert res["models"]["cvae"]["fluency"]["mean"] == 2.0 and res["models"]["cvae"]["fluency"]["ci95"] == [2.0, 2.0]
    assert res["models"]["slcvae"]["coherence"]["mean"] == 4.5
    assert res["models"]["slcvae"]["diversity"] == {"mean": 4.0, "ci95": [4.0, 4.0], "items": 6}
    assert res["alpha"]["diversity"] is None  # one rater only: agreement undefined
    assert 0.7 < res["alpha"]["fluency"] < 1.0  # high but not perfect: they disagree by one point on half the items


def test_alpha_matches_krippendorffs_textbook_example(tmp_path):
    ids = [f"u{j}" for j in range(12)]
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"items": {i: {"model": "m", "source_index": j} for j, i in enumerate(ids)}}))
    sheets = []
    for r, line in enumerate(TEXTBOOK):
        path = tmp_path / f"r{r}.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "source", "responses", "fluency", "coherence", "diversity"])
            for i, v in zip(ids, line.split(), strict=True):
                w.writerow([i, "", "", "" if v == "." else v, "3", "3"])
        sheets.append(path)
    res = aggregate(key, sheets)
    assert res["alpha"]["fluency"] == pytest.approx(0.8153875, abs=1e-6)
    assert res["alpha"]["coherence"] is None  # every rating is 3: alpha undefined, not 1


def test_import_rejects_bad_scores_with_file_and_line(tmp_path):
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"items": {"abc": {"model": "m", "source_index": 0}}}))
    sheet = tmp_path / "r.csv"
    sheet.write_text("id,source,responses,fluency,coherence,diversity\nabc,s,r,7,3,3\n")
    r = runner.invoke(app, ["human-eval", "import", "--key", str(key), str(sheet)])
    assert r.exit_code == 2 and f"{sheet}:2: fluency must be an integer 1-5" in r.output
    with pytest.raises(Exception, match="at least 2 models"):
        export({"only": sheet}, tmp_path / "x")


def test_import_reads_a_sheet_saved_with_a_byte_order_mark(tmp_path):
    """Spreadsheet programs save CSV as UTF-8 with a BOM; the first column must still be `id`."""
    from slcvae.evaluation.human import read_ratings

    sheet = tmp_path / "r.csv"
    sheet.write_bytes("\ufeffid,source,responses,fluency,coherence,diversity\nabc,s,r,4,3,\n".encode())
    assert read_ratings(sheet, {"abc"}) == {"abc": {"fluency": 4, "coherence": 3}}
