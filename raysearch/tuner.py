"""The search: `python -m raysearch --leads 4 --trials 64`.

    1. data     PTB-XL prepared once by the driver and put in Ray's object store once.
    2. teacher  a Tune run over the teacher's space, one grid cell per embedding size a student may
                sample; the best teacher per size (validation macro-AUC) goes into the object store
                once and is saved under RUN_DIR/teachers/SIZE.
    3. per lead subset, two arms with the same trial budget and the same ASHA scheduler:
                student  (pseudo = True)  OptunaSearch (TPE, seeded) over alpha, sim, embedding size, lr
                baseline (pseudo = False) OptunaSearch over the parameters that apply (embedding size, lr)
    4. summary  per lead subset the best configuration of each arm (validation fold), its test
                macro-AUC with bootstrap CI (fold 10, read once, for that configuration only),
                side by side: RUN_DIR/summary.json and summary.md, printed.

Interrupted? `--resume` (same --storage/--name) restores every unfinished Tune run with
`Tuner.restore` (finished trials and the Optuna study are kept) and skips finished stages.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from raysearch import UserError
from raysearch.data import CLASSES, cache_dir
from raysearch.space import embedding_sizes, load_space, stage_space, to_optuna, to_tune
from raysearch.train import (
    TrainConfig,
    check_teacher,
    evaluate_frozen,
    load_checkpoint,
    save_checkpoint,
)

METRIC, MODE = "val_macro_auc", "max"
NAMED = ("2", "3", "4", "6")
HPARAMS = ("alpha", "sim", "embedding_size", "lr", "leads", "pseudo", "stage")
PAPER_VAL_AUC = {
    "12": {"teacher": 0.9320},
    "6": {"student": 0.9017, "baseline": 0.9007},
    "4": {"student": 0.9227, "baseline": 0.9218},
    "3": {"student": 0.9213, "baseline": 0.9199},
    "2": {"student": 0.9017, "baseline": 0.9002},
}


def parse_lead_list(spec: str) -> list[str]:
    """'4', '2,3,4,6' or 'all' -> named subsets (students never read 12 leads: that is the teacher)."""
    if spec.strip() == "all":
        return list(NAMED)
    out = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [s for s in out if s not in NAMED]
    if bad or not out:
        raise UserError(
            f"--leads {spec}: expected named subsets from {', '.join(NAMED)} (comma-separated) or 'all'"
        )
    return list(dict.fromkeys(out))


def default_space_path(name: str) -> Path:
    """--space as given, else relative to the repository (an installed checkout)."""
    p = Path(name)
    if p.is_file() or p.is_absolute():
        return p
    beside = Path(__file__).resolve().parents[1] / name
    return beside if beside.is_file() else p


# ----------------------------------------------------------------------------- Ray plumbing


def _hparams_logger():
    """Tune's TensorBoard logger, with the HParams we compare trials by (constants included).

    Tune's own logger writes only the *sampled* parameters, so leads and pseudo would be missing,
    and it drops numpy types: here every value is turned into a plain Python type first.
    """
    from ray.tune.logger import TBXLoggerCallback

    from raysearch.trainable import flat_config

    class HParamsLogger(TBXLoggerCallback):
        def _try_log_hparams(self, trial, result):
            from tensorboardX.summary import hparams

            config = flat_config(trial.config)
            params = {k: config[k] for k in HPARAMS if k in config}
            params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
            params = {k: (str(v) if v is None else v) for k, v in params.items()}
            for summary in hparams(hparam_dict=params, metric_dict=result):
                self._trial_writer[trial].file_writer.add_summary(summary)

    return HParamsLogger()


def _asha_aware_optuna(max_t: int, **kwargs):
    """OptunaSearch that tells Optuna an ASHA-stopped trial was PRUNED, not COMPLETE.

    Tune reports a trial stopped early by ASHA as complete with its truncated metric, which TPE
    would take as a finished trial's score; PRUNED lets TPE treat it as the partial result it is.
    """
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    class AshaAwareOptunaSearch(OptunaSearch):
        def on_trial_complete(self, trial_id, result=None, error=False):
            stopped_early = (
                result is not None
                and not error
                and trial_id not in self._completed_trials
                and result.get("training_iteration", max_t) < max_t
            )
            if stopped_early:
                self._ot_study.tell(self._ot_trials[trial_id], None, state=TrialState.PRUNED)
                self._completed_trials.add(trial_id)
                return
            super().on_trial_complete(trial_id, result=result, error=error)

    return AshaAwareOptunaSearch(**kwargs)


def object_store_stats() -> dict:
    """Ray's own object-store accounting: the cluster's totals and the bytes held on each node."""
    import ray
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address, node_stats

    stats = get_memory_info_reply(get_state_from_address(ray.get_runtime_context().gcs_address)).store_stats
    per_node = {}
    for node in ray.nodes():
        if node["Alive"]:
            reply = node_stats(node["NodeManagerAddress"], node["NodeManagerPort"], include_memory_info=False)
            per_node[node["NodeID"]] = int(reply.store_stats.object_store_bytes_used)
    return {
        "bytes_used": int(stats.object_store_bytes_used),
        "num_local_objects": int(stats.num_local_objects),
        "cumulative_created_objects": int(stats.cumulative_created_objects),
        "cumulative_created_bytes": int(stats.cumulative_created_bytes),
        "bytes_used_per_node": per_node,
    }


def check_shared_storage(run_dir: Path) -> int:
    """On more than one node, every node must see RUN_DIR (Tune syncs trial results there).

    Probed, not guessed: the driver writes a token under RUN_DIR and a zero-CPU task pinned to
    each alive node reads it back. Returns the number of nodes; raises UserError naming the nodes
    that cannot see the path.
    """
    import uuid

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) <= 1:
        return len(nodes)
    token = uuid.uuid4().hex
    marker = run_dir / f".storage-probe-{token}"
    marker.write_text(token)

    @ray.remote(num_cpus=0)
    def read_marker(path: str) -> str:
        p = Path(path)
        return p.read_text() if p.is_file() else ""

    try:
        seen = ray.get(
            [
                read_marker.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                ).remote(str(marker))
                for n in nodes
            ],
            timeout=120,
        )
    finally:
        marker.unlink(missing_ok=True)
    blind = [n["NodeManagerAddress"] for n, got in zip(nodes, seen, strict=True) if got != token]
    if blind:
        raise UserError(
            f"--storage {run_dir.parent}: not visible from {len(blind)} of {len(nodes)} nodes "
            f"({', '.join(blind)}); on a multi-node cluster use a filesystem shared by every node "
            f"(NFS) at the same path"
        )
    return len(nodes)


# ------------------------------------------------------------------------------- the search


class Search:
    """One invocation's state: the run directory, the refs in the object store, the summary."""

    def __init__(self, args: argparse.Namespace, space: dict, leads: list[str]):
        self.args, self.space, self.leads = args, space, leads
        if "://" in args.storage:  # s3://, gs://, ...: Tune writes there; our files are staged and synced
            self.uri = args.storage.rstrip("/") + "/" + args.name
            self.run_dir = cache_dir() / "runs" / args.name
            self._filesystem()  # an unknown scheme fails here, in one line
            if args.resume:
                self.sync("down")
        else:
            self.uri = None
            self.run_dir = Path(args.storage).expanduser().resolve() / args.name
        self.location = self.uri or str(self.run_dir)
        self.progress_path = self.run_dir / "progress.json"
        self.progress = json.loads(self.progress_path.read_text()) if self.progress_path.is_file() else {}
        self.progress.setdefault("stages", {})
        self.data = None
        self.data_ref = None
        self.teacher_refs: dict[int, object] = {}
        self.resume_hint = "run the same command with --resume to continue"

    def save_progress(self) -> None:
        tmp = self.progress_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.progress, indent=1))
        tmp.replace(self.progress_path)
        self.sync("up")

    def sync(self, direction: str, paths: tuple[str, ...] = ("progress.json", "teachers", "best")) -> None:
        """Copy raysearch's own files between the local staging folder and a URI RUN_DIR: "up" the
        whole folder, "down" the `paths` inside it that exist there (default: what --resume needs)."""
        if self.uri is None:
            return
        import pyarrow.fs as pafs

        fs, base = self._filesystem()
        local = pafs.LocalFileSystem()
        if direction == "up":
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fs.create_dir(base, recursive=True)
            pafs.copy_files(str(self.run_dir), base, source_filesystem=local, destination_filesystem=fs)
            return
        for rel in paths:
            info = fs.get_file_info(f"{base}/{rel}")
            if info.type != pafs.FileType.NotFound:
                target = self.run_dir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                pafs.copy_files(
                    f"{base}/{rel}", str(target), source_filesystem=fs, destination_filesystem=local
                )

    def exists(self) -> bool:
        """Whether RUN_DIR already holds a search (local or at the URI)."""
        if self.uri is None:
            return self.run_dir.exists() and any(self.run_dir.iterdir())
        import pyarrow.fs as pafs

        fs, base = self._filesystem()
        return fs.get_file_info(f"{base}/progress.json").type != pafs.FileType.NotFound

    def _filesystem(self):
        """pyarrow's filesystem for the URI RUN_DIR and the path inside it."""
        import pyarrow as pa
        import pyarrow.fs as pafs

        try:
            return pafs.FileSystem.from_uri(self.uri)
        except (pa.ArrowException, OSError) as e:
            raise UserError(
                f"{self.uri}: {str(e).splitlines()[0]}; expected a filesystem path or a URI pyarrow "
                f"can open (s3://, gs://, hdfs://, file://)"
            ) from None

    # -- Tune runs -------------------------------------------------------------------------

    def _trainable(self):
        from ray import tune

        from raysearch.trainable import train_trial

        resources = {"cpu": self.args.cpus_per_trial, "gpu": self.args.gpus_per_trial}
        return tune.with_resources(
            tune.with_parameters(train_trial, data=self.data_ref, teachers=self.teacher_refs), resources
        )

    def _run_config(self, name: str):
        from ray import tune

        return tune.RunConfig(
            name=name,
            storage_path=self.location,
            verbose=1,
            callbacks=[_hparams_logger()],
            failure_config=tune.FailureConfig(max_failures=self.args.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        )

    def _common(self, constants: dict) -> dict:
        return {
            **constants,
            "threads": max(1, int(self.args.cpus_per_trial)),
            "seed": self.args.seed,
            "device": "cuda" if self.args.gpus_per_trial > 0 else "cpu",
        }

    def fit(self, name: str, make_tuner, expected: int):
        """Run (or, with --resume, restore and finish) the Tune experiment `name`.

        Tune returns normally when interrupted (Ctrl-C), its state saved; a stage with trials not
        yet terminated is then reported as interrupted, never summarized as if it were finished.
        """
        from ray import tune

        path = f"{self.uri}/{name}" if self.uri else str(self.run_dir / name)
        if self.args.resume and tune.Tuner.can_restore(path):
            print(f"resuming {name} from {path}", file=sys.stderr)
            tuner = tune.Tuner.restore(path, trainable=self._trainable(), resume_errored=True)
        else:
            tuner = make_tuner()
        grid = tuner.fit()
        statuses = [t.status for t in grid._experiment_analysis.trials]  # no public "interrupted" flag
        if len(statuses) < expected or any(s not in ("TERMINATED", "ERROR") for s in statuses):
            raise UserError(
                f"interrupted during {name}; finished trials are kept in {self.location}: {self.resume_hint}"
            )
        return list(grid)

    def teacher_stage(self) -> dict[int, dict]:
        """Train the teachers (one grid cell per embedding size); return the best per size."""
        from ray import tune

        sizes = embedding_sizes(self.space, self.leads)
        constants, dists, _ = stage_space(self.space, "teacher")
        dists.pop("embedding_size", None)
        param_space = {
            **self._common(constants),
            "stage": "teacher",
            "leads": "12",
            "pseudo": None,
            **to_tune(dists),
            "embedding_size": tune.grid_search(sizes),
        }
        trials = self.args.teacher_trials

        def make():
            return tune.Tuner(
                self._trainable(),
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    metric=METRIC,
                    mode=MODE,
                    num_samples=trials,
                    reuse_actors=True,
                    max_concurrent_trials=self.args.max_concurrent,
                ),
                run_config=self._run_config("teacher"),
            )

        results = self.fit("teacher", make, trials * len(sizes))
        best = {}
        for size in sizes:
            done = [
                r for r in results if r.error is None and r.config["embedding_size"] == size and r.checkpoint
            ]
            if not done:
                raise UserError(
                    f"no teacher with embedding size {size} finished; see {self.location}/teacher"
                )
            top = max(done, key=lambda r: r.metrics[METRIC])
            blob = self._blob(top)
            save_checkpoint(self.run_dir / "teachers" / str(size), blob)
            best[size] = blob
            self.progress["stages"].setdefault("teacher", {})[str(size)] = {
                "val_macro_auc": top.metrics[METRIC],
                "config": _plain(top.config, HPARAMS),
                "trials": sum(r.config["embedding_size"] == size for r in results),
            }
        return best

    def put_teachers(self, teachers: dict[int, dict]) -> None:
        """Each teacher (export_net's dict, by embedding size) into the object store once, whatever
        the number of student trials that distil from it."""
        import ray

        for size, blob in teachers.items():
            self.teacher_refs[int(size)] = ray.put({k: blob[k] for k in ("config", "model_config", "model")})

    @staticmethod
    def _blob(result) -> dict:
        """A finished trial's network as export_net's dict, from its last checkpoint."""
        from raysearch.trainable import load_trial_state

        state = load_trial_state(result.checkpoint)
        cfg = TrainConfig(**state["config"]).resolved()
        return {
            "config": state["config"],
            "model_config": cfg.model_config().to_dict(),
            "model": state["model"],
            "history": state["history"],
        }

    def test_once(self, result, out_dir: Path, with_ci: bool = True) -> dict:
        """Evaluate a chosen (frozen) trial's final network on validation and test; write it and
        its predictions to `out_dir` (write_run's layout); its metrics."""
        # the driver may sit on a CPU-only head node while the trials ran on GPU workers
        device = "auto" if self.args.gpus_per_trial > 0 else "cpu"
        return evaluate_frozen(self._blob(result), self.data, out_dir, device, with_ci=with_ci)

    def arm_stage(self, leads: str, arm: str) -> list:
        """One arm (student or baseline) of one lead subset: Optuna + ASHA over `--trials` trials."""
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search import ConcurrencyLimiter

        constants, dists, asha = stage_space(self.space, arm, leads)
        if self.args.teacher:  # one given teacher: its embedding size is the only one
            dists.pop("embedding_size", None)
            constants["embedding_size"] = next(iter(self.teacher_refs))
        epochs = int(constants.get("epochs", TrainConfig.epochs))
        param_space = {**self._common(constants), "stage": arm, "leads": leads, "pseudo": arm == "student"}
        for fixed in dists:
            param_space.pop(fixed, None)
        searcher = _asha_aware_optuna(
            epochs, space=to_optuna(dists), metric=METRIC, mode=MODE, seed=self.args.seed + int(leads)
        )

        def make():
            return tune.Tuner(
                self._trainable(),
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    num_samples=self.args.trials,
                    reuse_actors=True,
                    search_alg=ConcurrencyLimiter(searcher, max_concurrent=self.args.max_concurrent),
                    scheduler=ASHAScheduler(
                        metric=METRIC,
                        mode=MODE,
                        time_attr="training_iteration",
                        max_t=epochs,
                        grace_period=min(asha["grace_period"], epochs),
                        reduction_factor=asha["reduction_factor"],
                    ),
                ),
                run_config=self._run_config(f"{arm}-{leads}"),
            )

        return self.fit(f"{arm}-{leads}", make, self.args.trials)

    # -- the summary -----------------------------------------------------------------------

    def finalize(self, name: str, results: list, epochs: int) -> dict:
        """Pick the best fully trained trial on validation; evaluate it on the test fold once."""
        errored = [r for r in results if r.error is not None]
        finished = [r for r in results if r.error is None and r.metrics.get("training_iteration") == epochs]
        stopped = [r for r in results if r.error is None and r not in finished]
        if not finished:
            raise UserError(
                f"{name}: no trial finished all {epochs} epochs ({len(errored)} errored); "
                f"see {self.location}/{name}"
            )
        top = max(finished, key=lambda r: r.metrics[METRIC])
        metrics = self.test_once(top, self.run_dir / "best" / name)
        return {
            "trials": len(results),
            "finished": len(finished),
            "stopped_early": len(stopped),
            "errored": len(errored),
            "restarted": sum(_failed_once(r) and r.error is None for r in results),
            "best_config": _plain(top.config, ("alpha", "sim", "embedding_size", "lr", "weight_decay")),
            "val_macro_auc": metrics["val_macro_auc"],
            "test_macro_auc": metrics["test_macro_auc"],
            "test_macro_auc_ci": metrics["test_macro_auc_ci"],
            "test_per_class_auc": metrics["per_class_auc"],
            "best_dir": f"{self.location}/best/{name}",
        }


def _failed_once(result) -> bool:
    """Whether a trial ever crashed: Tune writes error.txt into its folder, even when a retry from
    its checkpoint then finished it (so this counts the crashes FailureConfig recovered)."""
    import pyarrow.fs as pafs

    fs = result.filesystem or pafs.LocalFileSystem()
    return fs.get_file_info(f"{result.path}/error.txt").type != pafs.FileType.NotFound


def _plain(config: dict, keys) -> dict:
    return {k: (config[k].item() if hasattr(config[k], "item") else config[k]) for k in keys if k in config}


def summary_markdown(summary: dict) -> str:
    """The side-by-side table of summary.json."""
    lines = [
        f"# raysearch summary: {summary['name']}",
        "",
        f"Data: {summary['data']} ({summary['records']} records). Space: {summary['space']}. "
        f"Trials per arm: {summary['trials']}. Test = fold 10, evaluated once for each chosen configuration.",
        "",
        f"Wall time: {summary['wall_seconds'] / 60:.1f} min over {summary['invocations']} invocation(s).",
        "",
        "| leads | arm | best config | val macro-AUC | test macro-AUC (95% CI) | paper (val) | trials "
        "(finished / ASHA-stopped / errored) |",
        "|---|---|---|---|---|---|---|",
    ]
    for leads, arms in summary["leads"].items():
        for arm, r in arms.items():
            cfg = ", ".join(f"{k}={_fmt(v)}" for k, v in r["best_config"].items())
            lo, hi = r["test_macro_auc_ci"]
            paper = PAPER_VAL_AUC.get(leads, {}).get(arm)
            lines.append(
                f"| {leads} | {arm} ({'pseudo = True' if arm == 'student' else 'pseudo = False'}) | {cfg} | "
                f"{r['val_macro_auc']:.4f} | {r['test_macro_auc']:.4f} ({lo:.4f}-{hi:.4f}) | "
                f"{paper if paper else '-'} | {r['trials']} ({r['finished']} / {r['stopped_early']} / "
                f"{r['errored']}) |"
            )
    lines += ["", "Teachers (12 leads, best per embedding size, validation):", ""]
    for size, t in summary["teachers"].items():
        if "given" in t:
            lines.append(f"- embedding {size}: given with --teacher {t['given']}")
            continue
        lines.append(
            f"- embedding {size}: val macro-AUC {t['val_macro_auc']:.4f} (lr {_fmt(t['config'].get('lr'))}, "
            f"{t.get('trials', '?')} trial(s))"
        )
    lines += [
        "",
        "Single-seed figures: a difference between the arms smaller than their CIs is no evidence of a gain;",
        "`python -m raysearch report RUN_DIR --seeds 5` retrains the chosen configurations with new seeds",
        "and tests the gain with a paired bootstrap.",
    ]
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


# -------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    from raysearch.cli import add_data_options

    p = argparse.ArgumentParser(
        prog="raysearch",
        description="Ray Tune search over the contrastive ECG method (subcommands: data, train, report)",
    )
    p.add_argument("--leads", default="4", help="lead subset(s): 2, 3, 4, 6, comma-separated, or 'all'")
    p.add_argument(
        "--trials", type=int, default=16, help="trials per arm (student and baseline) per lead subset"
    )
    add_data_options(p)
    p.add_argument("--space", default="search_spaces/default.yaml", help="search space YAML")
    p.add_argument(
        "--storage",
        default=os.environ.get("RAYSEARCH_STORAGE", "runs"),
        help="where RUN_DIR = STORAGE/NAME goes (a shared path on a multi-node cluster)",
    )
    p.add_argument("--name", default=None, help="run name (default: search-<leads>-<time>)")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS"), help="join this Ray cluster")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions pack trials on one GPU")
    p.add_argument("--max-concurrent", type=int, default=0, help="concurrent trials (0: as resources allow)")
    p.add_argument(
        "--max-failures", type=int, default=2, help="restarts of a crashed trial from its checkpoint"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher", help="teacher checkpoint: skip the teacher stage")
    p.add_argument("--teacher-trials", type=int, default=2, help="teacher trials per embedding size")
    p.add_argument("--no-baseline", action="store_true", help="skip the pseudo = False arm")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run --storage/--name")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    return p


def start_ray(args: argparse.Namespace, run_dir: Path | None) -> None:
    """Start (or join, --address) Ray; check that every node sees `run_dir` (None: a URI);
    default --max-concurrent to what the CPUs allow."""
    import ray

    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        if run_dir is not None:
            check_shared_storage(run_dir)
    except UserError:
        ray.shutdown()
        raise
    if not args.max_concurrent:
        args.max_concurrent = max(
            1, int(ray.cluster_resources().get("CPU", 1) // max(args.cpus_per_trial, 1e-9))
        )


def put_sealed(data):
    """Put the dataset in the object store once (every trial maps it zero-copy), its test fold
    sealed: no trial may read it, since trials are where configurations are chosen."""
    import ray

    return ray.put(replace(data, test_sealed=True))


def search_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    leads = parse_lead_list(args.leads)
    space = load_space(default_space_path(args.space))  # a malformed space fails before Ray starts
    if args.trials < 1 or args.teacher_trials < 1:
        raise UserError("--trials and --teacher-trials must be at least 1")
    if args.resume and not args.name:
        raise UserError("--resume needs the --name (and --storage) of the run to continue")
    args.name = args.name or f"search-{'-'.join(leads)}-{time.strftime('%Y%m%d-%H%M%S')}"
    search = Search(args, space, leads)
    if search.exists() and not args.resume:
        raise UserError(f"{search.location}: exists; pass --resume to continue it, or choose another --name")
    if args.resume and not search.progress_path.is_file():
        raise UserError(f"{search.location}: no interrupted search to resume (progress.json missing)")
    teacher_blob = load_checkpoint(args.teacher) if args.teacher else None
    if teacher_blob is not None:
        check_teacher(teacher_blob, f"--teacher {args.teacher}")
    search.run_dir.mkdir(parents=True, exist_ok=True)
    print(f"RUN_DIR {search.location}", flush=True)
    from raysearch.cli import load_data

    search.data = load_data(args)
    search.progress.update(
        args={k: v for k, v in vars(args).items() if k != "resume"}, space_file=space["_path"]
    )
    search.save_progress()

    import ray

    start_ray(args, None if search.uri else search.run_dir)
    t0 = time.perf_counter()
    try:
        search.data_ref = put_sealed(search.data)
        if teacher_blob is not None:
            size = teacher_blob["model_config"]["embedding_size"]
            teachers = {size: teacher_blob}
            search.progress["stages"]["teacher"] = {
                str(size): {
                    "given": args.teacher,
                    "config": _plain(teacher_blob["config"], ("lr", "arch", "width", "depth", "epochs")),
                }
            }
        elif search.progress["stages"].get("teacher_done"):
            teachers = {
                int(s): load_checkpoint(search.run_dir / "teachers" / s)
                for s in search.progress["stages"]["teacher"]
            }
        else:
            teachers = search.teacher_stage()
            search.progress["stages"]["teacher_done"] = True
            search.save_progress()
        search.put_teachers(teachers)
        stats_before = object_store_stats()
        arms = ("student",) if args.no_baseline else ("student", "baseline")
        for lead in leads:
            for arm in arms:
                name = f"{arm}-{lead}"
                if name in search.progress["stages"]:
                    continue
                results = search.arm_stage(lead, arm)
                epochs = int(stage_space(space, arm, lead)[0].get("epochs", TrainConfig.epochs))
                search.progress["stages"][name] = search.finalize(name, results, epochs)
                search.save_progress()
        stats_after = object_store_stats()
    finally:
        ray.shutdown()
        # every invocation's time, an interrupted one's too: the search's cost is their sum
        wall = search.progress.setdefault("wall", {"seconds": 0.0, "invocations": 0})
        wall["seconds"] += time.perf_counter() - t0
        wall["invocations"] += 1
        search.save_progress()
    summary = {
        "name": args.name,
        "run_dir": search.location,
        "data": search.data.source,
        "records": len(search.data),
        "space": space["_path"],
        "trials": args.trials,
        "seed": args.seed,
        "classes": list(CLASSES),
        "teachers": {s: t for s, t in search.progress["stages"].get("teacher", {}).items()},
        "leads": {lead: {arm: search.progress["stages"][f"{arm}-{lead}"] for arm in arms} for lead in leads},
        "object_store": {"after_teachers": stats_before, "after_students": stats_after},
        "wall_seconds_this_invocation": time.perf_counter() - t0,
        "wall_seconds": search.progress["wall"]["seconds"],
        "invocations": search.progress["wall"]["invocations"],
    }
    (search.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    (search.run_dir / "summary.md").write_text(summary_markdown(summary))
    search.sync("up")
    print(summary_markdown(summary))
    print(f"RUN_DIR {search.location}  (tensorboard --logdir {search.location})")
    return 0
