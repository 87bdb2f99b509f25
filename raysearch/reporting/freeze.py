"""Every arm's configuration as the search chose it on the validation fold, and the best 12-lead
teacher, frozen into RUN_DIR/report/configs.json before anything reads the test fold.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from raysearch.errors import UserError
from raysearch.files import write_text
from raysearch.training.checkpoint import load_checkpoint
from raysearch.training.config import stored_config

TEACHER = "teacher-12"  # the report's name for the 12-lead row's run


def _saved(run_dir: Path, what: str) -> dict:
    path = run_dir / "config.json"
    if not path.is_file():
        raise UserError(f"{path}: missing; expected the {what} saved by the search")
    return stored_config(json.loads(path.read_text())["config"], str(path))


def freeze(run_dir: Path, location: str | None = None) -> dict:
    """Every arm's configuration as the search chose it (validation fold only): {name: config},
    plus where each teacher lives. Raises UserError, naming `location` (RUN_DIR as the user gave
    it), when RUN_DIR is not a finished search."""
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
        teacher_dirs[int(size)] = str(saved if saved.is_dir() else Path(t["given"]))
    # the 12-lead row: the teacher the search rated best on validation (a given one has no score)
    best = max(summary["teachers"], key=lambda s: summary["teachers"][s].get("val_macro_auc", -1.0))
    configs = {TEACHER: load_checkpoint(teacher_dirs[int(best)]).config}
    for leads, arms in summary["leads"].items():
        for arm in arms:
            configs[f"{arm}-{leads}"] = _saved(run_dir / "best" / f"{arm}-{leads}", f"chosen {arm}")
    return {
        "configs": configs,
        "teachers": {str(k): v for k, v in teacher_dirs.items()},
        "search_seed": int(summary.get("seed", 0)),
        "summary": summary,
    }


def write_frozen(out: Path, frozen: dict) -> str:
    """Write configs.json (before any training or test read); its digest goes in the header."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {k: frozen[k] for k in ("configs", "teachers", "search_seed")}, indent=1, sort_keys=True
    )
    write_text(out / "configs.json", text)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
