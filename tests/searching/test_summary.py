"""summary.md names its data's size and sets the paper's figures beside its own only on the whole
of PTB-XL (a subset or synthetic data say why they do not)."""

from raysearch.reporting.reading import reading
from raysearch.searching.summary import data_line, scope, summary_markdown

ARM = {
    "best_config": {"lr": 1e-3},
    "val_macro_auc": 0.85,
    "test_macro_auc": 0.84,
    "test_macro_auc_ci": [0.8, 0.88],
    "trials": 4,
    "finished": 2,
    "stopped_early": 2,
    "errored": 0,
}


def _summary(records: int, database: int | None, synthetic: bool = False) -> dict:
    return {
        "name": "run",
        "data": "/data/ptb-xl",
        "synthetic": synthetic,
        "records": records,
        "database_records": database,
        "space": "cpu.yaml",
        "trials": 4,
        "wall_seconds": 60.0,
        "invocations": 1,
        "leads": {"4": {"student": ARM, "baseline": ARM}},
        "teachers": {},
    }


def test_the_whole_of_ptbxl_is_compared_with_the_paper():
    summary = _summary(21430, 21837)
    assert scope(summary) == "ptbxl"
    assert data_line(summary) == "/data/ptb-xl (21,430 records with a superclass, of PTB-XL's 21,837)"
    md = summary_markdown(summary)
    assert "| 0.9227 |" in md and "SUBSET" not in md


def test_a_subset_says_so_and_leaves_the_paper_out():
    summary = _summary(2965, 3000)
    assert scope(summary) == "subset"
    md = summary_markdown(summary)
    assert md.startswith("# raysearch summary: run (a SUBSET of PTB-XL)")
    assert "3,000 of its 21,837 records" in md and "not comparable with the paper's" in md
    assert "0.9227" not in md and "0.9218" not in md
    assert scope(_summary(2000, 2000, synthetic=True)) == "synthetic"
    assert scope({"records": 21430}) == "ptbxl" and scope({"records": 400}) == "subset"  # older runs


def test_a_reports_reading_on_a_subset_names_it():
    gain = {"gain": -0.01, "ci": [-0.02, -0.001], "p_value": 0.01, "n_boot": 1000}
    report = {
        "header": {"seeds": 1, "records": 2965, "database_records": 3000, "synthetic": False},
        "rows": [{"leads": "4", "gain": gain}],
        "incomplete": [],
    }
    lines = reading(report)
    assert "the teacher hurt" in lines[0]
    assert "subset of PTB-XL (2,965 with a superclass)" in lines[-1] and "not compared" in lines[-1]
