"""Search-space files: the shipped ones load, malformed ones fail before Ray starts."""

import pytest
from conftest import REPO, run_main

from raysearch import UserError
from raysearch.searching.space import embedding_sizes, load_space, stage_space, to_optuna

GOOD = """
constants: {epochs: 3, width: 8}
teacher:
  space: {lr: {loguniform: [1.0e-3, 1.0e-2]}}
student:
  space:
    alpha: {loguniform: [0.01, 10.0]}
    sim: {choice: [l1, cosine]}
    embedding_size: {choice: [16, 32]}
    lr: {uniform: [1.0e-3, 1.0e-2]}
leads:
  "2": {constants: {epochs: 5}, student: {space: {embedding_size: {choice: [64]}}}}
"""


def _write(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["default.yaml", "tiny.yaml"])
def test_shipped_spaces_load(name):
    space = load_space(REPO / "search_spaces" / name)
    assert set(to_optuna(stage_space(space, "student", "4")[1])) == {"alpha", "sim", "embedding_size", "lr"}


def test_stage_views_and_overrides(tmp_path):
    space = load_space(_write(tmp_path, GOOD))
    constants, dists, asha = stage_space(space, "baseline", "4")
    assert constants["epochs"] == 3 and set(dists) == {
        "embedding_size",
        "lr",
    }  # no alpha/sim for the baseline
    assert stage_space(space, "student", "2")[0]["epochs"] == 5
    assert embedding_sizes(space, ["4"]) == [16, 32] and embedding_sizes(space, ["2", "4"]) == [16, 32, 64]


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("student: {space: {lr: {gaussian: [0, 1]}}}", "unknown distribution 'gaussian'"),
        ("student: {space: {lr: {uniform: [0.1, 0.01]}}}", "need low < high"),
        ("student: {space: {lr: {loguniform: [0, 0.01]}}}", "loguniform needs low > 0"),
        ("student: {space: {beta: {uniform: [0, 1]}}}", "unknown key student.space.beta"),
        ("optimizer: adam", "unknown key optimizer"),
        ("constants: {epoch: 3}", "unknown key constants.epoch"),
        ("student: {space: {sim: {choice: [l3]}}}", "similarity 'l3': expected one of l1, l2, cosine"),
        ("student: {space: {embedding_size: {int: [8, 64]}}}", "embedding_size must be a choice"),
        ("leads: {'5': {constants: {epochs: 2}}}", "leads.5: expected a named lead subset"),
        ("student: [1, 2", "not valid YAML"),
        ("constants: {precision: fp16}", "constants.precision: precision 'fp16'; expected fp32 or bf16"),
        ("student: {space: {alpha: {uniform: [-1.0, 1.0]}}}", "student.space.alpha: lr 0.001 / alpha -1.0"),
        ("student: {constants: {alpha: -0.5}}", "expected lr > 0, alpha >= 0"),
        (
            "student: {space: {embedding_size: {choice: [16, true]}}}",
            "embedding_size: True; expected a whole",
        ),
        (
            "student: {space: {lr: {int: [1, 3]}}}",
            "int for lr, a finite number; expected uniform or loguniform",
        ),
        ("teacher: {space: {embedding_size: {choice: [16]}}}", "unknown key teacher.space.embedding_size"),
        ("asha: {grace_period: 0}", "asha.grace_period 0; expected a whole number of epochs >= 1"),
        ("asha: {reduction_factor: 1}", "asha.reduction_factor 1; expected a number > 1"),
        ("student: {space: {lr: {loguniform: [1.0e-4, .inf]}}}", "loguniform needs [low, high] of finite"),
        ("constants: {crop_seconds: 30}", "crop_seconds 30: expected 0 to 10 seconds"),
        ("constants: {epochs: 2.5}", "constants.epochs: 2.5; expected a whole number"),
        ("leads: {'2': {asha: {grace_period: 0}}}", "leads.2.asha.grace_period 0"),
    ],
)
def test_malformed_spaces(tmp_path, text, fragment):
    with pytest.raises(UserError, match=None) as err:
        load_space(_write(tmp_path, text))
    assert fragment in str(err.value) and "space.yaml" in str(err.value)


def test_cli_rejects_a_bad_space_before_ray_starts(tmp_path):
    path = _write(tmp_path, "student: {space: {lr: {uniform: [1, 0]}}}")
    result = run_main("--leads", "4", "--trials", "2", "--space", str(path), "--data", str(tmp_path / "none"))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "need low < high" in result.stderr
    assert "Started a local Ray" not in result.stderr
    result = run_main("--leads", "5", "--space", str(path))
    assert result.returncode == 2 and "--leads 5" in result.stderr


@pytest.mark.parametrize("text", ["", "student: {space: {alpha: {uniform: [0.1, 1]}}}", "teacher: {}"])
def test_a_space_must_give_the_arms_something_to_search(tmp_path, text):
    with pytest.raises(UserError, match="student.space defines none of embedding_size, lr, weight_decay"):
        load_space(_write(tmp_path, text))
