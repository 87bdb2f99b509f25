"""The search: `python -m raysearch --leads 4 --trials 64`, or `raysearch.search(leads="4")`.

    1. data     PTB-XL prepared once by the driver and put in Ray's object store once.
    2. teacher  `teacher_trials` random configurations (seeded) per embedding size a student may
                sample; when they have all ended, the best teacher per size (validation macro-AUC)
                goes into the object store once and is saved under RUN_DIR/teachers/SIZE.
    3. per lead subset, two arms with the same trial budget and the same ASHA scheduler:
                student  (pseudo = True)  OptunaSearch (TPE, seeded) over alpha, sim, embedding size, lr
                baseline (pseudo = False) OptunaSearch over the parameters that apply (embedding size, lr)
    4. summary  per lead subset the best configuration of each arm (validation fold), its test
                macro-AUC with bootstrap CI (fold 10, read once, for that configuration only),
                side by side: RUN_DIR/summary.json and summary.md, printed.

Each stage and arm is a Plan (plan.py) built here from the space file and the options; all of
them run as one Tune experiment (plan.one_experiment) sharing the cluster's trial slots: the
baselines start with the teacher stage (they need no teacher), the students when it has ended,
each arm still its own search (its study, its ASHA brackets, its budget). Interrupted?
`resume=True` (same storage and name) restores the experiment with `Tuner.restore` (finished
trials, every study and bracket kept) and skips the arms already summarized.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

from raysearch.arms import ArmSearcher
from raysearch.checkpoint import check_teacher, load_checkpoint, load_teacher, save_checkpoint
from raysearch.data import require_answerable
from raysearch.errors import UserError
from raysearch.files import DiskFull, write_text
from raysearch.plan import (
    Plan,
    arm_results,
    best_trial,
    evaluate_trial,
    failed_once,
    one_experiment,
    run_plan,
    sort_trials,
)
from raysearch.progress import ConsoleProgress, Stage, expected_epochs
from raysearch.render import summary_markdown
from raysearch.rundir import RunDir
from raysearch.session import ClusterOptions, Session, ray_session
from raysearch.sources import DataOptions, open_dataset
from raysearch.space import embedding_sizes, load_space, stage_space, to_optuna, to_tune
from raysearch.train import TrainConfig, teacher_source
from raysearch.trainable import result_blob
from raysearch.vocabulary import (
    ARMS,
    CLASSES,
    HPARAMS,
    METRIC,
    MODE,
    PSEUDO,
    SEED_RANGE,
    arm_name,
    derived_seed,
    parse_lead_list,
)

PAPER_SPACE = "search_spaces/default.yaml"  # the paper's budget: meant for GPUs
CPU_SPACE = "search_spaces/cpu.yaml"  # a budget a 2-core machine finishes in about half an hour
SEARCHED = ("alpha", "sim", "embedding_size", "lr", "weight_decay")  # what a summary shows per arm
TRIALS = "trials"  # RUN_DIR/trials: the one Tune experiment, every arm's trials as ARM-ID
STUDIES = "optuna.db"  # RUN_DIR/optuna.db: every arm's Optuna study (optuna-dashboard reads it)


@dataclass
class SearchOptions(DataOptions, ClusterOptions):
    """Everything a search is asked to do (the CLI's options; `raysearch.search`'s arguments)."""

    leads: str = "4"  # 2, 3, 4, 6, comma-separated, or 'all'
    trials: int = 16  # per arm (student and baseline) per lead subset
    space: str | None = None  # None: the paper's space when trials get GPUs, else the CPU space
    storage: str = field(default_factory=lambda: os.environ.get("RAYSEARCH_STORAGE", "runs"))
    name: str | None = None  # default: search-<leads>-<time>
    seed: int = 0
    teacher: str | None = None  # a teacher checkpoint: no teacher stage
    teacher_trials: int = 2  # per embedding size
    no_baseline: bool = False
    mlflow: str | None = None  # an MLflow tracking URI: every trial logged there too
    resume: bool = False


def default_space_path(name: str) -> Path:
    """--space as given, else relative to the repository (an installed checkout)."""
    p = Path(name)
    if p.is_file() or p.is_absolute():
        return p
    beside = Path(__file__).resolve().parents[1] / name
    return beside if beside.is_file() else p


def _plain(config: dict, keys) -> dict:
    return {k: (config[k].item() if hasattr(config[k], "item") else config[k]) for k in keys if k in config}


# ------------------------------------------------------------------------------------ plans


def teacher_plan(space: dict, sizes: list[int], options: SearchOptions, session: Session) -> Plan:
    """The teacher stage: `teacher_trials` random configurations per embedding size, sampled
    from the space with a generator seeded by --seed (the same seed, the same teachers)."""
    import numpy as np

    from raysearch.tune_ext import FixedSearcher

    constants, dists, _ = stage_space(space, "teacher")
    dists.pop("embedding_size", None)
    domains = to_tune(dists)
    rng = np.random.RandomState(options.seed)
    configs = [
        {
            "embedding_size": size,
            **_plain({k: d.sample(random_state=rng) for k, d in domains.items()}, domains),
        }
        for size in sizes
        for _ in range(options.teacher_trials)
    ]
    param_space = {
        **constants,
        **session.trial_constants(),
        "seed": options.seed,
        "stage": "teacher",
        "leads": "12",
        "pseudo": PSEUDO["teacher"],
    }
    epochs = int(constants.get("epochs", TrainConfig.epochs))
    searcher = FixedSearcher(configs, metric=METRIC, mode=MODE)
    return Plan("teacher", param_space, len(configs), epochs, searcher)


def arm_plan(
    space: dict,
    leads: str,
    arm: str,
    options: SearchOptions,
    session: Session,
    teacher_size: int | None,
) -> Plan:
    """One arm (student or baseline) of one lead subset: Optuna (TPE, seeded) + ASHA over `trials`;
    its study is kept under the plan's name (AshaAwareOptunaSearch.keep_studies_in).
    `teacher_size`: the embedding size of a given --teacher, the only one students may then use."""
    from ray.tune.schedulers import ASHAScheduler

    from raysearch.tune_ext import AshaAwareOptunaSearch

    constants, dists, asha = stage_space(space, arm, leads)
    if teacher_size is not None:
        dists.pop("embedding_size", None)
        constants["embedding_size"] = teacher_size
    epochs = int(constants.get("epochs", TrainConfig.epochs))
    grace = min(asha["grace_period"], epochs)
    param_space = {
        **constants,
        **session.trial_constants(),
        "seed": options.seed,
        "stage": arm,
        "leads": leads,
        "pseudo": PSEUDO[arm],
    }
    for sampled in dists:
        param_space.pop(sampled, None)
    searcher = AshaAwareOptunaSearch(
        epochs,
        study_name=arm_name(arm, leads),
        space=to_optuna(dists),
        metric=METRIC,
        mode=MODE,
        seed=derived_seed(options.seed, int(leads)),
    )
    scheduler = ASHAScheduler(
        metric=METRIC,
        mode=MODE,
        time_attr="training_iteration",
        max_t=epochs,
        grace_period=grace,
        reduction_factor=asha["reduction_factor"],
    )
    mean = expected_epochs(epochs, grace, asha["reduction_factor"])
    return Plan(
        arm_name(arm, leads), param_space, options.trials, epochs, searcher, scheduler, mean_epochs=mean
    )


# ---------------------------------------------------------------------------------- stages


def _choose_teachers(results: list, plan: Plan, sizes: list[int], run_dir: RunDir) -> dict[int, dict]:
    """The best teacher per embedding size, saved under RUN_DIR/teachers/SIZE and recorded."""
    best = {}
    for size in sizes:
        mine = [r for r in results if r.config["embedding_size"] == size]
        try:
            top = best_trial(mine, plan.epochs, f"teacher {size}")
        except UserError:
            raise UserError(
                f"no teacher with embedding size {size} finished; see {run_dir.location}/teacher"
            ) from None
        blob = result_blob(top)
        save_checkpoint(run_dir.path / "teachers" / str(size), blob)
        best[size] = blob
        run_dir.progress["stages"].setdefault("teacher", {})[str(size)] = {
            "val_macro_auc": top.metrics[METRIC],
            "config": _plain(top.config, HPARAMS),
            "trials": len(mine),
        }
    return best


def _arm_summary(plan: Plan, results: list, data, run_dir: RunDir, device: str) -> dict:
    """Pick the arm's best fully trained trial on validation; evaluate it on the test fold once."""
    trials = sort_trials(results, plan.epochs)
    try:
        top = best_trial(results, plan.epochs, plan.name)
    except UserError as e:
        raise UserError(f"{e}; see {run_dir.location}/{plan.name}") from None
    data.test_sealed = False  # the configuration is chosen: its test figures may be read, once
    try:
        metrics = evaluate_trial(top, data, run_dir.path / "best" / plan.name, device)
    finally:
        data.test_sealed = True
    return {
        "trials": len(results),
        "finished": len(trials["finished"]),
        "stopped_early": len(trials["stopped_early"]),
        "errored": len(trials["errored"]),
        "restarted": sum(failed_once(r) and r.error is None for r in results),
        "best_config": _plain(top.config, SEARCHED),
        "val_macro_auc": metrics["val_macro_auc"],
        "test_macro_auc": metrics["test_macro_auc"],
        "test_macro_auc_ci": metrics["test_macro_auc_ci"],
        "test_per_class_auc": metrics["per_class_auc"],
        "best_dir": f"{run_dir.location}/best/{plan.name}",
    }


def _run_dir(options: SearchOptions, leads: list[str]) -> RunDir:
    """The options checked and the RUN_DIR they name (nothing written yet)."""
    if options.trials < 1 or options.teacher_trials < 1:
        raise UserError("--trials and --teacher-trials must be at least 1")
    if not 0 <= options.seed < SEED_RANGE:
        raise UserError(f"--seed {options.seed}: expected 0 to 2^32 - 1")
    options.check()
    if options.resume and not options.name:
        raise UserError("--resume needs the --name (and --storage) of the run to continue")
    options.name = options.name or f"search-{'-'.join(leads)}-{time.strftime('%Y%m%d-%H%M%S')}"
    return RunDir(options.storage, options.name)


def _open_run(run_dir: RunDir, options: SearchOptions) -> None:
    """A new RUN_DIR must be empty; a resumed one is read (fetched first from a URI)."""
    if options.resume:
        run_dir.sync("down")
    else:
        run_dir.clear_staging()  # left by an earlier attempt at this URI: not this run's
    if run_dir.exists() and not options.resume:
        raise UserError(f"{run_dir.location}: exists; pass --resume to continue it, or choose another --name")
    if options.resume and not run_dir.progress_path.is_file():
        raise UserError(f"{run_dir.location}: no interrupted search to resume (progress.json missing)")
    run_dir.load_progress()


def choose_space(options: SearchOptions, recorded: str | None) -> tuple[Path, str]:
    """The space file and, when raysearch chose it, why (said at start): the one a resumed run
    recorded; else the paper's budget when trials get GPUs and the CPU budget when they do not."""
    if options.space:
        path = default_space_path(options.space)
        if options.gpus_per_trial <= 0 and path.resolve() == default_space_path(PAPER_SPACE).resolve():
            return path, (
                f"the paper's budget, meant for GPUs: on CPUs alone it takes days (a paper-scale teacher "
                f"epoch took 2 min on 2 cores, BENCHMARKS.md); {CPU_SPACE} fits a CPU machine"
            )
        return path, ""
    if recorded:
        return Path(recorded), "recorded by the run being resumed"
    if options.gpus_per_trial > 0:
        return default_space_path(PAPER_SPACE), "the paper's budget (trials get GPUs; --space to choose)"
    return default_space_path(CPU_SPACE), (
        f"picked: trials run on CPUs (--gpus-per-trial 0), where the paper's {PAPER_SPACE} would take "
        f"days; --space to choose"
    )


# What a search searched: a --resume that changes one of these would continue another search.
# The rest (--max-concurrent, --cpus-per-trial, --address, ...) only change how it runs.
WHAT_IT_SEARCHED = ("leads", "trials", "teacher_trials", "seed", "teacher", "no_baseline", "sampling_rate")
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


def _describe(options, leads, arms, plans, space, space_note, data, sizes, session, run_dir) -> str:
    """What the search will do, said before it starts: data, space and budget, resources, RUN_DIR.
    `plans`: the arms' plans, whose epochs and ASHA mean per trial are what the budget says."""
    t_const, _, _ = stage_space(space, "teacher")
    s_const, _, _ = stage_space(space, "student", leads[0])
    teacher = TrainConfig(stage="teacher", **{k: v for k, v in t_const.items() if k != "lr"}).resolved()
    student = TrainConfig(stage="student", leads=leads[0], **s_const).resolved()
    first = {p.param_space["leads"]: p for p in reversed(plans)}  # each lead subset's first arm
    kind = (
        f"SYNTHETIC, {len(data)} generated records: a demo of the pipeline, its figures say nothing "
        f"about the method"
        if data.synthetic
        else f"{len(data)} PTB-XL records with a diagnostic superclass, {data.sampling_rate} Hz"
    )
    teachers = (
        f"teacher given ({options.teacher})"
        if options.teacher
        else f"{options.teacher_trials * len(sizes)} teacher trials ({options.teacher_trials} per embedding "
        f"size {', '.join(map(str, sizes))}; {teacher.epochs} epochs each)"
    )
    per_lead = "; ".join(
        f"{first[lead].epochs} for {lead} leads (~{first[lead].mean_epochs:.1f} on average with ASHA)"
        for lead in leads
    )
    resources = session.describe()
    step = "as one CUDA graph" if student.graphs != "off" and session.device == "cuda" else "eager"
    lines = [
        f"raysearch: search {', '.join(leads)} leads, arms {' + '.join(arms)}, "
        f"{options.trials} trials per arm",
        f"  data     {data.source}: {kind}",
        f"  space    {space['_path']}{f' ({space_note})' if space_note else ''}",
        f"           teacher {teacher.arch} {teacher.width}x{teacher.depth}, students {student.arch} "
        f"{student.width}x{student.depth}, batch {student.batch_size}, {student.crop_seconds} s crops",
        f"           students see the teacher through {teacher_source(student)}; training step {step}",
        f"  budget   {teachers}",
        f"           and {len(leads) * len(arms)} arm(s) x {options.trials} trials, all in one experiment "
        f"({'baselines from the start, ' if 'baseline' in arms else ''}students once their teacher "
        f"is chosen); epochs per trial: {per_lead}",
        f"  cluster  {resources}; {session.max_concurrent} trial(s) at a time",
        f"  RUN_DIR  {run_dir.location}  (tensorboard --logdir {run_dir.location})",
    ]
    return "\n".join(lines)


def run_search(options: SearchOptions) -> dict:
    """Run (or resume) a search; write and return its summary (summary.json's contents)."""
    leads = parse_lead_list(options.leads)
    run_dir = _run_dir(options, leads)  # every option checked: nothing is written before
    with run_dir.owned(fresh=not options.resume):
        _open_run(run_dir, options)
        try:
            return _search(options, leads, run_dir)
        except DiskFull as e:
            if not run_dir.keep or "--resume" in str(e):
                raise
            raise DiskFull(f"{e}; then continue with `{resume_command(options, run_dir)}`") from None


def _search(options: SearchOptions, leads: list[str], run_dir: RunDir) -> dict:
    """The search in the RUN_DIR this process owns."""
    from raysearch.tune_ext import (
        AshaAwareOptunaSearch,
        hparams_experiment,
        object_store_stats,
        open_mlflow,
    )

    space_path, space_note = choose_space(options, run_dir.progress.get("space_file"))
    space = load_space(space_path)  # a malformed space fails before Ray starts
    teacher_blob = load_teacher(options.teacher) if options.teacher else None
    if teacher_blob is not None:
        check_teacher(teacher_blob, f"--teacher {options.teacher}")
    data = open_dataset(options)  # a missing dataset leaves no RUN_DIR behind (owned(fresh=True))
    require_answerable(data)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    data.test_sealed = True  # opened only for the chosen configurations (_arm_summary)
    digests = {
        "space_sha256": hashlib.sha256(Path(space["_path"]).read_bytes()).hexdigest(),
        "data_sha256": data.content_key(),
    }
    if options.resume:
        check_resume(run_dir, options, digests)
    if options.mlflow:
        open_mlflow(options.mlflow, run_dir.name)
    run_dir.progress.update(
        args={k: v for k, v in asdict(options).items() if k != "resume"}, space_file=space["_path"], **digests
    )
    run_dir.save_progress()
    hparams_experiment(
        str(run_dir.path), (METRIC, "train_loss", "sim_loss", *(f"val_auc_{c}" for c in CLASSES))
    )
    stages = run_dir.progress["stages"]
    hint = f"run `{resume_command(options, run_dir)}` to continue"
    arms = ARMS[:1] if options.no_baseline else ARMS
    device = "auto" if options.gpus_per_trial > 0 else "cpu"
    started = time.time()
    # every invocation's time, a killed one's too (written as it goes): the search's cost is their sum
    with run_dir.wall_clock() as clock, ray_session(options, run_dir) as session:
        session.put_data(data)
        sizes = embedding_sizes(space, leads)
        teacher_size = teacher_blob["model_config"]["embedding_size"] if teacher_blob else None
        AshaAwareOptunaSearch.keep_studies_in(f"sqlite:///{run_dir.path / STUDIES}")
        plans = [arm_plan(space, lead, arm, options, session, teacher_size) for lead in leads for arm in arms]
        said = _describe(options, leads, arms, plans, space, space_note, data, sizes, session, run_dir)
        print(said, flush=True)
        measured = dict(run_dir.progress.get("seconds_per_epoch", {}))
        stats = {}
        chosen = teacher_blob is not None or stages.get("teacher_done")  # no teacher stage to run
        teacher = None if chosen else teacher_plan(space, sizes, options, session)
        failed: list[str] = []

        def hand_over(teachers: dict[int, dict]) -> None:
            session.put_teachers(teachers)
            stats["after_teachers"] = object_store_stats()

        def teachers_ended(trials: list) -> None:
            """When every teacher trial has ended (inside Tune's loop): choose, save, share."""
            if stages.get("teacher_done"):
                return  # chosen by an earlier invocation and shared when this one started
            try:
                results = [_trial_result(t) for t in trials]
                teachers = _choose_teachers(results, teacher, sizes, run_dir)
                measured.update(_seconds_per_epoch("teacher", results))
                hand_over(teachers)
            except DiskFull:
                raise
            except UserError as e:
                failed.append(str(e))
                raise
            stages["teacher_done"] = True
            run_dir.progress["seconds_per_epoch"] = measured
            run_dir.save_progress()

        if teacher_blob is not None:
            hand_over({teacher_size: teacher_blob})
            stages["teacher"] = {
                str(teacher_size): {
                    "given": options.teacher,
                    "config": _plain(teacher_blob["config"], ("lr", "arch", "width", "depth", "epochs")),
                }
            }
        elif stages.get("teacher_done"):
            hand_over({int(s): load_checkpoint(run_dir.path / "teachers" / s) for s in stages["teacher"]})
        todo = [p for p in plans if p.name not in stages]
        if todo:
            arms_of = ([teacher] if teacher is not None else []) + plans
            experiment = one_experiment(
                TRIALS,
                arms_of,
                after={p.name: "teacher" for p in plans if p.param_space["pseudo"]} if teacher else None,
            )
            ArmSearcher.hooks = {"teacher": teachers_ended}
            stage_of = [Stage(p.name, p.num_samples, p.epochs, p.mean_epochs or p.epochs) for p in arms_of]
            progress = ConsoleProgress(stage_of, session.max_concurrent, measured=measured, started=started)
            callbacks = [progress]
            if options.mlflow:
                from raysearch.tune_ext import MLflowTrialLogger  # imports MLflow: only when asked

                callbacks.append(MLflowTrialLogger(options.mlflow, experiment_name=run_dir.name))
            run_dir.keep = True  # trials from here on: an interrupted run is resumed, not removed
            try:
                results = run_plan(experiment, session, run_dir, options.resume, hint, callbacks)
            except UserError:
                if failed:  # the teacher stage left no teacher: say that, not "interrupted"
                    raise UserError(failed[0]) from None
                raise
            for plan in todo:
                mine = arm_results(results, plan)
                measured.update(_seconds_per_epoch(plan.name, mine))
                stages[plan.name] = _arm_summary(plan, mine, data, run_dir, device)
                run_dir.progress["seconds_per_epoch"] = measured
                run_dir.save_progress()
        stats_before = stats.get("after_teachers") or object_store_stats()
        stats_after = object_store_stats()
    summary = {
        "name": options.name,
        "run_dir": run_dir.location,
        "data": data.source,
        "synthetic": data.synthetic,
        "records": len(data),
        "space": space["_path"],
        "trials": options.trials,
        "seed": options.seed,
        "classes": list(CLASSES),
        "teachers": dict(stages.get("teacher", {})),
        "leads": {lead: {arm: stages[arm_name(arm, lead)] for arm in arms} for lead in leads},
        "object_store": {"after_teachers": stats_before, "after_students": stats_after},
        "wall_seconds_this_invocation": clock.this_invocation,
        "wall_seconds": clock.seconds,
        "invocations": clock.invocations,
    }
    write_text(run_dir.path / "summary.json", json.dumps(summary, indent=1))
    write_text(run_dir.path / "summary.md", summary_markdown(summary))
    run_dir.sync("up")
    print(summary_markdown(summary))
    print(f"RUN_DIR {run_dir.location}  (tensorboard --logdir {run_dir.location})")
    return summary


def _trial_result(trial) -> SimpleNamespace:
    """A Tune Trial read like a Result (config, last metrics, checkpoint, error): the teachers are
    chosen inside Tune's loop, from its trials, before the experiment's results exist."""
    return SimpleNamespace(
        config=trial.config,
        metrics=trial.last_result or {},
        checkpoint=trial.checkpoint,
        error="errored" if trial.status == "ERROR" else None,
    )


def _seconds_per_epoch(name: str, results: list) -> dict[str, float]:
    """The median seconds per epoch of a stage's trials (what the forecast of later stages uses)."""
    per_epoch = [
        r.metrics["time_total_s"] / r.metrics["training_iteration"]
        for r in results
        if r.metrics and r.metrics.get("training_iteration")
    ]
    return {name: statistics.median(per_epoch)} if per_epoch else {}
