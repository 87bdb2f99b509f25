"""What mattered: Optuna's importances over an arm's finished trials, and the report's section."""

import math

import optuna
import pytest

from raysearch.reporting.importance import MIN_TRIALS, what_mattered
from raysearch.reporting.markdown import mattered_markdown
from raysearch.reporting.plots import plot_mattered

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(storage: str, name: str, trials: int, pruned: int = 0):
    """Validation AUC that depends on the learning rate alone (alpha, sim and size are noise)."""
    study = optuna.create_study(
        study_name=name, storage=storage, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1)
    )

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        trial.suggest_float("alpha", 0.1, 3.0, log=True)
        trial.suggest_categorical("sim", ["l1", "l2", "cosine"])
        trial.suggest_categorical("embedding_size", [64, 128])
        if trial.number < pruned:
            raise optuna.TrialPruned()
        return 0.9 - 0.05 * (math.log10(lr) + 3) ** 2

    study.optimize(objective, n_trials=trials)


def test_the_one_parameter_that_matters_ranks_first_for_both_evaluators(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study(storage, "student-4", trials=30, pruned=4)
    _study(storage, "student-2", trials=MIN_TRIALS - 1)
    mattered = what_mattered(tmp_path / "optuna.db")
    arm = mattered["student-4"]
    assert arm["finished"] == 26 and arm["trials"] == {"complete": 26, "pruned": 4, "fail": 0}
    for evaluator in ("fanova", "ped_anova"):
        ranked = arm["importance"][evaluator]
        assert max(ranked, key=ranked.get) == "lr", (evaluator, ranked)
        assert sum(ranked.values()) == pytest.approx(1.0)
    assert set(arm["best_val_macro_auc_per_sim"]) == {"l1", "l2", "cosine"}
    assert len(arm["points"]) == 26 and {"lr", "alpha", "sim", "val_macro_auc"} <= set(arm["points"][0])
    assert mattered["student-2"]["importance"] is None  # too few to rank: no noise printed

    text = "\n".join(mattered_markdown(mattered))
    assert "| lr |" in text and "Too few finished trials to rank parameters (11 < 12)" in text
    assert plot_mattered(mattered, tmp_path / "m.png") and (tmp_path / "m.png").stat().st_size > 10_000
    assert what_mattered(tmp_path / "absent.db") == {}
    assert mattered_markdown({}) == [] and not plot_mattered({}, tmp_path / "none.png")


def test_with_a_noise_floor_what_explains_less_than_retraining_noise_is_marked(tmp_path):
    import statistics

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study(storage, "student-4", trials=30)
    scores = [p["val_macro_auc"] for p in what_mattered(tmp_path / "optuna.db")["student-4"]["points"]]
    spread = statistics.pstdev(scores)
    # a floor between what lr explains and what the noise parameters explain
    arm = what_mattered(tmp_path / "optuna.db", floors={"student-4": 0.3 * spread})["student-4"]
    assert arm["noise_floor"] == 0.3 * spread
    for evaluator in ("fanova", "ped_anova"):
        explained = arm["explained_std"][evaluator]
        importance = arm["importance"][evaluator]
        assert explained["lr"] == pytest.approx(math.sqrt(importance["lr"]) * spread)
        within = arm["importance_within_noise"][evaluator]
        assert within["lr"] is False and within["embedding_size"] is True, (evaluator, explained)
    best = arm["best_val_macro_auc_per_sim"]
    top = max(best.values())
    assert arm["sim_within_noise"] == {s: top - v < 0.3 * spread for s, v in best.items()}
    text = "\n".join(mattered_markdown({"student-4": arm}))
    assert "Retraining noise (the std of validation macro-AUC over seeds, from the finalists)" in text
    assert "| lr | " in text and "within retraining noise" in text
    lr_row = next(line for line in text.splitlines() if line.startswith("| lr |"))
    assert "within retraining noise" not in lr_row
    # without finalists nothing is marked
    assert "explained_std" not in what_mattered(tmp_path / "optuna.db")["student-4"]
