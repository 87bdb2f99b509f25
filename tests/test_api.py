"""The Python API as the README shows it: search, report and load_model from one script."""

import re
import shutil
import tempfile

import numpy as np
import pytest
from conftest import REPO, kill_matching, micro

import raysearch


def _readme_example() -> str:
    """The README's Python example (its first ```python block)."""
    return re.search(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)


def _substitute(code: str, **new: str) -> str:
    for old, value in new.items():
        assert old in code, f"the README example no longer has {old!r}"
        code = code.replace(old, value)
    return code


def test_package_import_is_light_and_names_the_api():
    assert {"search", "report", "load_model", "UserError"} <= set(raysearch.__all__)
    with pytest.raises(AttributeError):
        raysearch.nothing  # noqa: B018


@pytest.mark.slow
def test_readme_example_runs(tmp_path, monkeypatch, synthetic_ptbxl):
    monkeypatch.chdir(tmp_path)
    ray_tmp = tempfile.mkdtemp(prefix="rsa", dir="/tmp")  # short: Ray's socket paths have a limit
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    (tmp_path / "micro.yaml").write_text(micro())
    code = _substitute(
        _readme_example(),
        # the same calls on the test's small data and space, two trials at a time on 2 cores
        **{
            'data="synthetic"': f'data="{synthetic_ptbxl}", num_cpus=2, max_concurrent=2, teacher_trials=1, '
            "finalists=1, finalist_seeds=1",
            'space="tiny"': 'space="micro.yaml"',
        },
    )
    scope: dict = {}
    try:
        exec(compile(code, "README.md", "exec"), scope)
    finally:
        kill_matching(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    summary, report, model, p = scope["summary"], scope["report"], scope["model"], scope["probabilities"]
    assert summary["leads"]["4"]["student"]["trials"] == 4
    assert [row["leads"] for row in report["rows"]] == ["12", "4"]
    assert model.leads == ("I", "II", "III", "V2") and model.config.stage == "student"
    assert p.shape == (2, 5) and np.all((p >= 0) & (p <= 1))
