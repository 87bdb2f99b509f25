"""Search spaces: a YAML file read and checked before Ray starts.

    constants:                 # TrainConfig fields fixed for every trial (epochs, width, ...)
      epochs: 4
    teacher:
      constants: {depth: 3}    # the teacher's own fixed fields (override `constants`)
      space:
        lr: {loguniform: [1.0e-3, 1.0e-2]}
    student:
      constants: {}
      space:
        alpha: {loguniform: [0.01, 10.0]}
        sim: {choice: [l1, l2, cosine]}
        embedding_size: {choice: [32, 64]}
        lr: {loguniform: [1.0e-4, 1.0e-2]}
    asha: {grace_period: 1, reduction_factor: 2}
    leads:                     # per lead subset: anything above, overridden
      "2": {constants: {epochs: 6}}

Distributions: `uniform: [low, high]`, `loguniform: [low, high]` (low > 0), `int: [low, high]`,
`choice: [a, b, ...]`. Every embedding size a student may sample needs a trained teacher, so
`embedding_size` must be a constant or a `choice`. The baseline (pseudo = False) searches the
student space less `alpha` and `sim`, which do not apply to it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import fields
from pathlib import Path

import yaml

from raysearch.data.schema import LEAD_SUBSETS
from raysearch.errors import UserError, first_line
from raysearch.training.config import TRAIN_PRECISIONS, TrainConfig

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")


TOP_KEYS = ("constants", "teacher", "student", "asha", "leads")


STAGE_KEYS = ("constants", "space")


ASHA_KEYS = ("grace_period", "reduction_factor")


FIELD_TYPES = {f.name: f.type for f in fields(TrainConfig)}  # "int", "float", "str" (annotations)


CONFIG_FIELDS = set(FIELD_TYPES) - {"stage", "leads"}


STUDENT_ONLY = ("alpha", "sim")  # the teacher terms: the baseline (pseudo = False) has none


SEARCHABLE = {
    # the teachers' embedding sizes are the students' (each size a student samples needs one)
    "teacher": {"lr", "weight_decay"},
    "student": {"alpha", "sim", "embedding_size", "lr", "weight_decay"},
}


EXPECTED = {"int": "a whole number", "float": "a finite number", "str": "a string"}


def _check_keys(where: str, got: dict, allowed, path: str) -> None:
    if not isinstance(got, dict):
        raise UserError(f"{path}: {where} must be a mapping, got {type(got).__name__}")
    unknown = sorted(set(got) - set(allowed), key=str)
    if unknown:
        raise UserError(
            f"{path}: unknown key {where + '.' if where else ''}{unknown[0]}; "
            f"expected one of {', '.join(sorted(allowed))}"
        )


def _is(kind: str, value) -> bool:
    """Whether `value` is of a TrainConfig field's kind (YAML's true is no integer, .inf no number)."""
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, str)


def _check_value(where: str, name: str, value, path: str) -> None:
    """One value of a TrainConfig field: its type, and what a stage accepts (TrainConfig.resolved)."""
    kind = FIELD_TYPES[name]
    if not _is(kind, value):
        raise UserError(f"{path}: {where}: {value!r}; expected {EXPECTED[kind]}")
    if name == "precision" and value not in TRAIN_PRECISIONS:
        raise UserError(
            f"{path}: {where}: precision {value!r}; expected {' or '.join(TRAIN_PRECISIONS)} "
            f"(fp16 would need loss scaling to train)"
        )
    try:
        TrainConfig(stage="student", leads="4", **{name: value}).resolved()
    except UserError as e:
        raise UserError(f"{path}: {where}: {e}") from None


def _check_distribution(where: str, name: str, spec, path: str) -> None:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise UserError(f"{path}: {where} must be one distribution, e.g. {{loguniform: [1.0e-4, 1.0e-2]}}")
    ((kind, args),) = spec.items()
    if kind not in DISTRIBUTIONS:
        raise UserError(
            f"{path}: {where}: unknown distribution {kind!r}; expected one of {', '.join(DISTRIBUTIONS)}"
        )
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise UserError(f"{path}: {where}: choice needs a non-empty list")
        for value in args:
            _check_value(where, name, value, path)
        return
    field_kind = FIELD_TYPES[name]
    wanted = "int" if kind == "int" else "float"
    if field_kind != wanted:
        other = "int" if field_kind == "int" else "uniform or loguniform"
        raise UserError(f"{path}: {where}: {kind} for {name}, {EXPECTED[field_kind]}; expected {other}")
    if not (isinstance(args, list) and len(args) == 2 and all(_is(wanted, a) for a in args)):
        raise UserError(f"{path}: {where}: {kind} needs [low, high] of finite numbers, got {args!r}")
    low, high = args
    if not low < high:
        raise UserError(f"{path}: {where}: {kind} bounds [{low}, {high}] need low < high")
    if kind == "loguniform" and low <= 0:
        raise UserError(f"{path}: {where}: loguniform needs low > 0, got {low}")
    for bound in args:
        _check_value(where, name, bound, path)


def _check_stage(stage: str, section: dict, path: str, prefix: str) -> None:
    _check_keys(f"{prefix}{stage}", section, STAGE_KEYS, path)
    _check_constants(f"{prefix}{stage}.constants", section.get("constants", {}), path)
    space = section.get("space", {})
    _check_keys(f"{prefix}{stage}.space", space, SEARCHABLE[stage], path)
    for name, spec in space.items():
        where = f"{prefix}{stage}.space.{name}"
        _check_distribution(where, name, spec, path)
        if name == "embedding_size" and "choice" not in spec:
            raise UserError(f"{path}: {where}: embedding_size must be a choice (each size needs a teacher)")


def _check_constants(where: str, constants: dict, path: str) -> None:
    _check_keys(where, constants, CONFIG_FIELDS, path)
    for name, value in constants.items():
        _check_value(f"{where}.{name}", name, value, path)


def _check_asha(where: str, asha: dict, path: str) -> None:
    _check_keys(where, asha, ASHA_KEYS, path)
    grace, reduction = asha.get("grace_period", 1), asha.get("reduction_factor", 2)
    if not (_is("int", grace) and grace >= 1):
        raise UserError(f"{path}: {where}.grace_period {grace!r}; expected a whole number of epochs >= 1")
    if not (_is("float", reduction) and reduction > 1):
        raise UserError(f"{path}: {where}.reduction_factor {reduction!r}; expected a number > 1")


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


SHIPPED = ("default", "cpu", "tiny")  # the spaces the package carries (search_spaces/ in the repository)


def space_path(name: str | Path) -> Path:
    """--space: a shipped space by name (default: the paper's budget, cpu: a 2-core machine's,
    tiny: demos and tests), or the path of a YAML file."""
    if str(name) in SHIPPED:
        from importlib.resources import files

        return Path(str(files("raysearch.search_spaces") / f"{name}.yaml"))
    return Path(name).expanduser()


def load_space(path: str | Path) -> dict:
    """Read and validate a space file; raises UserError naming the file and the offending key."""
    path = space_path(path)
    if not path.is_file():
        raise UserError(
            f"{path}: no such search space file; expected a YAML file or a shipped space "
            f"({', '.join(SHIPPED)})"
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({first_line(e)})") from None
    _check_keys("", raw, TOP_KEYS, path)
    _check_constants("constants", raw.get("constants", {}), path)
    for stage in ("teacher", "student"):
        _check_stage(stage, raw.get(stage, {}), path, "")
    _check_asha("asha", raw.get("asha", {}), path)
    for leads, override in (raw.get("leads") or {}).items():
        if str(leads) not in LEAD_SUBSETS:
            raise UserError(
                f"{path}: leads.{leads}: expected a named lead subset ({', '.join(LEAD_SUBSETS)})"
            )
        _check_keys(f"leads.{leads}", override, ("constants", "student", "asha"), path)
        _check_constants(f"leads.{leads}.constants", override.get("constants", {}), path)
        if "student" in override:
            _check_stage("student", override["student"], path, f"leads.{leads}.")
        _check_asha(f"leads.{leads}.asha", override.get("asha", {}), path)
    baseline = set(SEARCHABLE["student"]) - set(STUDENT_ONLY)
    if not set((raw.get("student") or {}).get("space") or {}) & baseline:
        # the baseline arm searches the student's space less alpha and sim: it needs one of these
        raise UserError(
            f"{path}: student.space defines none of {', '.join(sorted(baseline))}; expected the "
            f"parameters the student and baseline arms search (see search_spaces/tiny.yaml)"
        )
    raw["_path"] = str(path)
    return raw


def stage_space(space: dict, stage: str, leads: str | None = None) -> tuple[dict, dict, dict]:
    """(constants, distributions, asha settings) of one stage, with the lead subset's overrides.

    stage is 'teacher', 'student' or 'baseline' (the student's space without alpha and sim).
    """
    section = "teacher" if stage == "teacher" else "student"
    merged = space
    if leads is not None and str(leads) in (space.get("leads") or {}):
        merged = _merge(space, space["leads"][str(leads)])
    constants = {**merged.get("constants", {}), **merged.get(section, {}).get("constants", {})}
    dists = dict(merged.get(section, {}).get("space", {}))
    if stage == "baseline":
        dists = {k: v for k, v in dists.items() if k not in STUDENT_ONLY}
    asha = {"grace_period": 1, "reduction_factor": 2, **merged.get("asha", {})}
    return constants, dists, asha


def embedding_sizes(space: dict, leads: list[str]) -> list[int]:
    """Every embedding size a student (or baseline) may use: each needs a teacher."""
    sizes = set()
    for lead in leads:
        constants, dists, _ = stage_space(space, "student", lead)
        if "embedding_size" in dists:
            sizes.update(dists["embedding_size"]["choice"])
        else:
            sizes.add(constants.get("embedding_size", TrainConfig.embedding_size))
    return sorted(sizes)


def to_optuna(dists: dict) -> dict:
    """YAML distributions as Optuna distributions (what OptunaSearch samples)."""
    import optuna.distributions as od

    out = {}
    for name, spec in dists.items():
        ((kind, args),) = spec.items()
        if kind == "choice":
            out[name] = od.CategoricalDistribution(list(args))
        elif kind == "int":
            out[name] = od.IntDistribution(int(args[0]), int(args[1]))
        else:
            out[name] = od.FloatDistribution(float(args[0]), float(args[1]), log=kind == "loguniform")
    return out


def to_tune(dists: dict) -> dict:
    """YAML distributions as Ray Tune sample domains (for the teacher's random search)."""
    from ray import tune

    out = {}
    for name, spec in dists.items():
        ((kind, args),) = spec.items()
        out[name] = {
            "choice": lambda a: tune.choice(list(a)),
            "int": lambda a: tune.randint(a[0], a[1] + 1),
            "uniform": lambda a: tune.uniform(*a),
            "loguniform": lambda a: tune.loguniform(*a),
        }[kind](args)
    return out
