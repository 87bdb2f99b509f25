"""What a `--resume` may change: only how a search runs, never what it searched; and the exact
command that continues a run.
"""

from __future__ import annotations

from dataclasses import asdict

from raysearch.errors import UserError
from raysearch.searching.options import SearchOptions
from raysearch.searching.rundir import RunDir

# What a search searched: a --resume that changes one of these would continue another search.
# The rest (--max-concurrent, --cpus-per-trial, --address, ...) only change how it runs.
WHAT_IT_SEARCHED = (
    "leads",
    "trials",
    "teacher_trials",
    "seed",
    "teacher",
    "no_baseline",
    "sampling_rate",
    "finalists",
    "finalist_seeds",
)


FIXED_AT_START = ("mlflow",)  # Tune keeps its callbacks in the run: a restore cannot change them


def check_resume(run_dir: RunDir, options: SearchOptions, digests: dict) -> None:
    """Refuse a --resume whose options, space contents or data differ from the run's, naming each
    (also the ones that change only where the run is logged, which a restore cannot change)."""
    recorded = run_dir.progress.get("args") or {}
    differences = [
        f"--{k.replace('_', '-')} {getattr(options, k)} (the run's: {recorded[k]})"
        for k in WHAT_IT_SEARCHED
        if k in recorded and recorded[k] != getattr(options, k)
    ]
    differences += [
        f"--{k} {getattr(options, k)} (the run's: {recorded.get(k)}; fixed when a run starts)"
        for k in FIXED_AT_START
        if recorded.get(k) != getattr(options, k)
    ]
    if run_dir.progress.get("space_sha256") not in (None, digests["space_sha256"]):
        differences.append(
            f"the space file {options.space or run_dir.progress.get('space_file')} has changed"
        )
    if run_dir.progress.get("data_sha256") not in (None, digests["data_sha256"]):
        differences.append(f"--data {options.data} holds other records, labels or folds than the run's")
    if differences:
        original = SearchOptions(
            **{k: v for k, v in recorded.items() if k in SearchOptions.__dataclass_fields__}
        )
        raise UserError(
            f"--resume of {run_dir.location} would change what it searched: {'; '.join(differences)}; "
            f"continue it with `{resume_command(original, run_dir)}`, or start another --name"
        )


def resume_command(options: SearchOptions, run_dir: RunDir) -> str:
    """The exact command that continues this run: its options, --name, --storage and --resume."""
    import shlex

    default = SearchOptions()
    args = ["python", "-m", "raysearch"]
    values = {**asdict(options), "storage": run_dir.storage, "name": run_dir.name}
    for name, value in values.items():
        if name == "resume" or (value == getattr(default, name) and name not in ("storage", "name")):
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value not in (None, False):
            args += [flag, str(value)]
    return shlex.join([*args, "--resume"])
