"""The report's figures: report-mattered.png draws the panels that have data and names the rest."""

from raysearch.reporting.plots import mattered_panels, plot_mattered


def _points(student: bool, n: int) -> list[dict]:
    extra = {"alpha": 0.5, "sim": "l2"} if student else {}
    return [{"lr": 10 ** (-3 - i / n), "val_macro_auc": 0.7 + i / 100, **extra} for i in range(n)]


def test_only_panels_with_data_are_drawn_and_the_rest_is_named(tmp_path):
    mattered = {
        "student-2": {"points": _points(True, 4)},
        "baseline-2": {"points": _points(False, 2)},
        "student-4": {"points": []},
    }
    panels, absent = mattered_panels(mattered)
    assert [(arm, param) for arm, param, _ in panels] == [
        ("student-2", "alpha"),
        ("student-2", "lr"),
        ("baseline-2", "lr"),
    ]
    assert absent == [
        "baseline-2 vs alpha: no teacher, no similarity term",
        "student-4: no trial ran the full budget",
    ]
    assert plot_mattered(mattered, tmp_path / "m.png") and (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    assert not plot_mattered({"student-4": {"points": []}}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
