"""The search: `python -m raysearch --leads 4 --trials 64`, or `raysearch.search(leads="4")`.

    1. data     PTB-XL prepared once by the driver and put in Ray's object store once.
    2. teacher  `teacher_trials` random configurations (seeded) per embedding size a student may
                sample; when they have all ended, the best teacher per size (validation macro-AUC)
                goes into the object store once and is saved under RUN_DIR/teachers/SIZE.
    3. per lead subset, two arms with the same trial budget and the same ASHA scheduler:
                student  (pseudo = True)  OptunaSearch (TPE, seeded) over alpha, sim, embedding size, lr
                baseline (pseudo = False) OptunaSearch over the parameters that apply (embedding size, lr)
    4. finalists each arm's top `finalists` configurations retrained with `finalist_seeds` more
                seeds once its trials have ended (searching/finalists.py); the best mean is chosen.
    5. summary  per lead subset the chosen configuration of each arm (validation fold), its test
                macro-AUC with bootstrap CI (fold 10, read once, for that configuration only),
                side by side: RUN_DIR/summary.json and summary.md, printed.

The teacher search and every arm run as one Tune experiment (experiment.combine) sharing the
cluster's trial slots: the baselines start with the teacher search (they need no teacher), the
students when it has ended, each arm still its own search (its study, its ASHA brackets, its
budget). Interrupted? `resume=True` (same storage and name) restores the experiment with
`Tuner.restore` (finished trials, every study and bracket kept) and skips the arms already
summarized.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

from raysearch.data.dataset import open_dataset
from raysearch.data.ptbxl import require_answerable
from raysearch.data.schema import CLASSES, parse_lead_list
from raysearch.errors import UserError
from raysearch.files import DiskFull, write_text
from raysearch.searching.budget import arm_search, choose_space
from raysearch.searching.cluster import ray_cluster
from raysearch.searching.combined import CombinedSearcher
from raysearch.searching.experiment import combine, run_experiment
from raysearch.searching.finalists import finalist_seeds, finalist_trials, finalists_arm
from raysearch.searching.options import SearchOptions
from raysearch.searching.progress import ConsoleProgress, ProgressRow
from raysearch.searching.resume import check_resume, resume_command
from raysearch.searching.rundir import RunDir
from raysearch.searching.space import embedding_sizes, load_space, stage_space
from raysearch.searching.summary import arm_summary, seconds_per_epoch, summary_markdown
from raysearch.searching.teachers import Teachers
from raysearch.training.config import ARMS, METRIC, SEED_RANGE, TrainConfig, arm_name
from raysearch.training.embeddings import teacher_source
from raysearch.training.operating import check_rule

TRIALS = "trials"  # RUN_DIR/trials: the one Tune experiment, every arm's trials as ARM-ID


STUDIES = "optuna.db"  # RUN_DIR/optuna.db: every arm's Optuna study (optuna-dashboard reads it)


def _run_dir(options: SearchOptions, leads: list[str]) -> RunDir:
    """The options checked and the RUN_DIR they name (nothing written yet)."""
    if options.trials < 1 or options.teacher_trials < 1:
        raise UserError("--trials and --teacher-trials must be at least 1")
    if not 0 <= options.seed < SEED_RANGE:
        raise UserError(f"--seed {options.seed}: expected 0 to 2^32 - 1")
    options.check()
    check_rule(options.threshold_rule)
    if options.finalists is not None and options.finalists < 0:
        raise UserError(f"--finalists {options.finalists}: expected 0 (off) or more configurations per arm")
    if options.finalist_seeds < 1:
        raise UserError(f"--finalist-seeds {options.finalist_seeds}: expected at least 1 further seed")
    if options.resume and not options.name:
        raise UserError("--resume needs the --name (and --storage) of the run to continue")
    options.name = options.name or f"search-{'-'.join(leads)}-{time.strftime('%Y%m%d-%H%M%S')}"
    return RunDir(options.storage, options.name)


def _open_run(run_dir: RunDir, options: SearchOptions) -> None:
    """A new RUN_DIR must be empty; a resumed one is read (fetched first from a URI). --finalists
    is made a number: a resumed run keeps its own unless another is asked (and then refused)."""
    if options.resume:
        run_dir.sync("down")
    else:
        run_dir.clear_staging()  # left by an earlier attempt at this URI: not this run's
    if run_dir.exists() and not options.resume:
        raise UserError(f"{run_dir.location}: exists; pass --resume to continue it, or choose another --name")
    if options.resume and not run_dir.progress_path.is_file():
        raise UserError(f"{run_dir.location}: no interrupted search to resume (progress.json missing)")
    run_dir.load_progress()
    options.finalists = options.finalist_count(run_dir.progress.get("args"))


def _describe(options, leads, arms, trial_sets, space, space_note, data, sizes, cluster, run_dir) -> str:
    """What the search will do, said before it starts: data, space and budget, resources, RUN_DIR.
    `trial_sets`: the arms' trial_sets, whose epochs and ASHA mean per trial are what the budget says."""
    t_const, _, _ = stage_space(space, "teacher")
    s_const, _, _ = stage_space(space, "student", leads[0])
    teacher = TrainConfig(stage="teacher", **{k: v for k, v in t_const.items() if k != "lr"}).resolved()
    student = TrainConfig(stage="student", leads=leads[0], **s_const).resolved()
    first = {p.param_space["leads"]: p for p in reversed(trial_sets)}  # each lead subset's first arm
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
    resources = cluster.describe()
    step = "as one CUDA graph" if student.graphs != "off" and cluster.device == "cuda" else "eager"
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
        f"           {_finalists_line(options, leads, arms, trial_sets)}",
        f"  cluster  {resources}; {cluster.max_concurrent} trial(s) at a time",
        f"  RUN_DIR  {run_dir.location}  (tensorboard --logdir {run_dir.location})",
    ]
    return "\n".join(lines)


def _finalists_line(options: SearchOptions, leads: list[str], arms: tuple, trial_sets: list) -> str:
    """How each arm's choice is made, and what the finalists add to the budget."""
    if not options.finalists:
        return "finalists off (--finalists 0): each arm's choice is its best single run"
    k, s = options.finalists, options.finalist_seeds
    epochs = max(t.epochs for t in trial_sets)
    added = sum(k * s * t.epochs for t in trial_sets)
    searched = sum(t.num_samples * (t.mean_epochs or t.epochs) for t in trial_sets)
    return (
        f"then each arm's top {k} configuration(s) retrained with {s} more seed(s), chosen by the mean "
        f"(finalists): {len(leads) * len(arms)} x {k * s} trials of {epochs} epochs, no early stopping "
        f"({added} epochs, {100 * added / searched:.0f}% more than the arms' ~{searched:.0f})"
    )


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
    """The search in the RUN_DIR this process owns: everything checked before Ray starts, then
    the teacher search and every arm as one experiment, then each arm's summary."""
    from raysearch.searching.ray_compat import AshaAwareOptunaSearch, object_store_stats

    # every invocation's time, a killed one's too (written as it goes), reading the data included:
    # the search's cost is their sum
    with run_dir.wall_clock() as clock:
        try:
            space_path, space_note = choose_space(options, run_dir.progress.get("space_file"))
            space = load_space(space_path)  # a malformed space fails before Ray starts
            teachers = Teachers(options, run_dir)  # so does a --teacher that is not one
            data = open_dataset(options)  # a missing dataset leaves no RUN_DIR behind (owned(fresh=True))
            require_answerable(data)
            data.test_sealed = True  # opened only for the chosen configurations (summary.arm_summary)
            _record_start(run_dir, options, space, data)
        except UserError:
            clock.discard()  # refused before any work: not an invocation of this search
            raise
        arms = ARMS[:1] if options.no_baseline else ARMS
        sizes = embedding_sizes(space, leads)
        with ray_cluster(options, run_dir) as cluster:
            cluster.put_data(data)
            AshaAwareOptunaSearch.keep_studies_in(f"sqlite:///{run_dir.path / STUDIES}")
            trial_sets = [
                arm_search(space, lead, arm, options, cluster, teachers.given_size)
                for lead in leads
                for arm in arms
            ]
            print(
                _describe(options, leads, arms, trial_sets, space, space_note, data, sizes, cluster, run_dir)
            )
            teachers.start(space, sizes, cluster)
            store = {"after_teachers": object_store_stats()} if teachers.trial_set is None else {}
            todo = [t for t in trial_sets if t.name not in run_dir.progress["stages"]]
            if todo:
                _run_arms(options, run_dir, cluster, teachers, trial_sets, todo, data, store, clock)
            store.setdefault("after_teachers", object_store_stats())
            store["after_students"] = object_store_stats()
        return _write_summary(options, leads, arms, run_dir, space, data, clock, store)


def _record_start(run_dir: RunDir, options: SearchOptions, space: dict, data) -> None:
    """What this search is (its options, space and data, by digest), checked against the run a
    --resume continues; the MLflow store checked; TensorBoard's HParams experiment written."""
    from raysearch.searching.tracking import hparams_experiment, open_mlflow

    digests = {
        "space_sha256": hashlib.sha256(Path(space["_path"]).read_bytes()).hexdigest(),
        "data_sha256": data.content_key(),
    }
    if options.resume:
        check_resume(run_dir, options, digests)
    if options.mlflow:
        open_mlflow(options.mlflow, run_dir.name)
    args = {k: v for k, v in asdict(options).items() if k != "resume"}
    run_dir.progress.update(args=args, space_file=space["_path"], **digests)
    run_dir.save_progress()
    metrics = (METRIC, "train_loss", "sim_loss", *(f"val_auc_{c}" for c in CLASSES))
    hparams_experiment(str(run_dir.path), metrics)


def _run_arms(options, run_dir, cluster, teachers, trial_sets, todo, data, store, clock) -> None:
    """The teacher search (if any) and every arm as one Tune experiment; then each arm summarized
    (its chosen trial evaluated on the test fold, once)."""
    from raysearch.searching.ray_compat import object_store_stats

    teacher = teachers.trial_set
    seeds = finalist_seeds(options.seed, options.finalist_seeds)
    finalists = {
        t.name: finalist_trials(t, options.finalists, seeds) for t in trial_sets if options.finalists
    }
    parts = ([teacher] if teacher is not None else []) + trial_sets + list(finalists.values())
    after = {t.name: "teacher" for t in trial_sets if t.param_space["pseudo"]} if teacher else {}
    after.update({f.name: arm for arm, f in finalists.items()})  # an arm's finalists follow its search
    experiment = combine(TRIALS, parts, after=after)

    def teachers_ended(trials: list) -> None:
        teachers.ended(trials)
        store["after_teachers"] = object_store_stats()

    CombinedSearcher.hooks = {"teacher": teachers_ended}
    lines = [ProgressRow(t.name, t.num_samples, t.epochs, t.mean_epochs or t.epochs) for t in parts]
    started = time.time() - clock.this_invocation  # elapsed: this invocation's, data reading included
    callbacks = [ConsoleProgress(lines, cluster.max_concurrent, measured=teachers.measured, started=started)]
    if options.mlflow:
        from raysearch.searching.ray_compat import MLflowTrialLogger  # imports MLflow: only when asked

        callbacks.append(MLflowTrialLogger(options.mlflow, experiment_name=run_dir.name))
    hint = f"run `{resume_command(options, run_dir)}` to continue"
    run_dir.keep = True  # trials from here on: an interrupted run is resumed, not removed
    try:
        results = run_experiment(experiment, cluster, run_dir, options.resume, hint, callbacks)
    except UserError:
        if teachers.failed:  # the teacher search left no teacher: say that, not "interrupted"
            raise UserError(teachers.failed[0]) from None
        raise
    device = "auto" if options.gpus_per_trial > 0 else "cpu"
    for arm in todo:
        mine = [r for r in results if r.config.get("arm") == arm.name]
        theirs = [r for r in results if r.config.get("arm") == finalists_arm(arm.name)] if finalists else None
        teachers.measured.update(seconds_per_epoch(arm.name, mine))
        chosen = arm_summary(arm, mine, data, run_dir, device, options.threshold_rule, theirs, options.seed)
        run_dir.progress["stages"][arm.name] = chosen
        run_dir.progress["seconds_per_epoch"] = teachers.measured
        run_dir.save_progress()


def _write_summary(options, leads, arms, run_dir, space, data, clock, store) -> dict:
    """summary.json and summary.md in RUN_DIR (synced to a URI), printed; returned."""
    stages = run_dir.progress["stages"]
    summary = {
        "name": options.name,
        "run_dir": run_dir.location,
        "data": data.source,
        "synthetic": data.synthetic,
        "records": len(data),
        "database_records": len(data) + data.dropped + len(data.skipped),
        "space": space["_path"],
        "trials": options.trials,
        "seed": options.seed,
        "finalists": options.finalists,
        "finalist_seeds": options.finalist_seeds if options.finalists else 0,
        "classes": list(CLASSES),
        "teachers": dict(stages.get("teacher", {})),
        "leads": {lead: {arm: stages[arm_name(arm, lead)] for arm in arms} for lead in leads},
        "object_store": store,
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
