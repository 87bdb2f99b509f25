"""Every arm's configuration as the search chose it on the validation fold (by its finalists' seed
means, or by its best first run), and the best 12-lead teacher, frozen into
RUN_DIR/report/configs.json before anything reads the test fold.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from raysearch.errors import UserError
from raysearch.files import write_text
from raysearch.training.checkpoint import load_checkpoint, teacher_checkpoint
from raysearch.training.config import stored_config

TEACHER = "teacher-12"  # the report's name for the 12-lead row's run


def _saved(run_dir: Path, what: str) -> dict:
    path = run_dir / "config.json"
    if not path.is_file():
        raise UserError(f"{path}: missing; expected the {what} saved by the search")
    return stored_config(json.loads(path.read_text())["config"], str(path))


def freeze(run_dir: Path, location: str | None = None, chosen_by: str | None = None) -> dict:
    """Every arm's configuration as the search chose it (validation fold only): {name: config},
    plus where each teacher lives, and the report's name. `chosen_by` "first-run" takes each
    arm's best single run instead of its finalists' choice (report-first-run: what a search
    without finalists would have chosen). Raises UserError, naming `location` (RUN_DIR as the
    user gave it), when RUN_DIR is not a finished search."""
    path = run_dir / "summary.json"
    if not path.is_file():
        raise UserError(
            f"{location or run_dir}/summary.json: missing; expected the RUN_DIR of a finished search "
            f"(it writes summary.json when every stage is done)"
        )
    summary = json.loads(path.read_text())
    teacher_dirs = {}
    for size, t in summary["teachers"].items():
        saved = run_dir / "teachers" / size
        # a given --teacher may have been a search's RUN_DIR: its teachers/SIZE is the checkpoint
        teacher_dirs[int(size)] = str(saved if saved.is_dir() else teacher_checkpoint(t["given"]))
    # the 12-lead row: the teacher the search rated best on validation (a given one has no score)
    best = max(summary["teachers"], key=lambda s: summary["teachers"][s].get("val_macro_auc", -1.0))
    configs = {TEACHER: load_checkpoint(teacher_dirs[int(best)]).config}
    own = "finalists" if summary.get("finalists") else "first-run"
    if chosen_by == "finalists" and own != "finalists":
        raise UserError(
            f"--chosen-by finalists: {location or run_dir} ran no finalists (--finalists 0); its arms "
            f"were chosen by their best first run"
        )
    seed = int(summary.get("seed", 0))
    for leads, arms in summary["leads"].items():
        for arm, r in arms.items():
            config = _saved(run_dir / "best" / f"{arm}-{leads}", f"chosen {arm}")
            if chosen_by == "first-run" and own == "finalists":  # the same arm: only searched values differ
                config = {**config, **r["search_winner"]["config"], "seed": seed}
            configs[f"{arm}-{leads}"] = config
    return {
        "configs": configs,
        "teachers": {str(k): v for k, v in teacher_dirs.items()},
        "search_seed": seed,
        "summary": summary,
        "chosen_by": chosen_by or own,
        # the search's own choice is RUN_DIR/report.*; the other one beside it
        "name": "report" if (chosen_by or own) == own else f"report-{chosen_by}",
    }


def write_frozen(out: Path, frozen: dict) -> str:
    """Write configs.json (before any training or test read); its digest goes in the header."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {k: frozen[k] for k in ("configs", "teachers", "search_seed", "chosen_by")}, indent=1, sort_keys=True
    )
    write_text(out / "configs.json", text)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
