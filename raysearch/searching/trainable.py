"""One Ray Tune trial: `train_stage` (training/stage.py) with a report and a checkpoint every epoch.

The prepared dataset and the teachers reach the trial as object refs, put once by the driver (the
dataset passed with `tune.with_parameters`, the teachers found on the cluster's SharedObjects, since they
are put after the first trials started); a teacher's cached embeddings are computed by the first
student trial that needs them and shared through the same SharedObjects: `ray.get` maps the numpy
arrays zero-copy from the node's object store, so a trial never reads PTB-XL from disk and never
copies the teacher into its config.
A trial restarted after a crash (FailureConfig) resumes from its last checkpoint, whose format
(the training state in `state.pt`) this module alone writes and reads.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import torch

from raysearch.errors import first_line
from raysearch.training.checkpoint import SavedNetwork
from raysearch.training.config import TrainConfig
from raysearch.training.embeddings import embed_training_records
from raysearch.training.stage import train_stage

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"


_CONFIG_FIELDS = {f.name for f in fields(TrainConfig)}


def trial_config(config: dict) -> TrainConfig:
    """The TrainConfig of a Tune config (extra keys such as `pseudo` are Tune-side labels)."""
    return TrainConfig(**{k: v for k, v in config.items() if k in _CONFIG_FIELDS})


def _resolve(ref):
    import ray

    return ray.get(ref) if isinstance(ref, ray.ObjectRef) else ref


def embeddings_key(cfg: TrainConfig) -> str:
    """Which cached teacher embeddings a student reads: its teacher (by embedding size) and the
    crop grid and precision they were computed at."""
    return f"{cfg.embedding_size}/{cfg.teacher_cache}/{cfg.crop_seconds:g}/{cfg.precision}"


def shared_teacher_embeddings(shared, cfg: TrainConfig, teacher: SavedNetwork, data, trial_id: str) -> tuple:
    """The teacher's cached embeddings for this student: read from the cluster's SharedObjects
    (`shared`), or, for the first trial that needs them, computed here with the trial's own
    resources and kept there for every later trial (the others wait meanwhile). Returns
    (TeacherEmbeddings, whether computed here).

    While it computes, the trial beats `shared` every few seconds: a trial that dies mid-way stops
    beating, and its claim passes to the next trial that asks."""
    import threading

    import ray

    name = f"cache/{embeddings_key(cfg)}"
    while True:
        (got,) = ray.get(shared.claim.remote(name, trial_id))
        if isinstance(got, ray.ObjectRef):
            return ray.get(got), False
        if got:
            break
        time.sleep(1.0)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(10.0):
            shared.beat.remote(name, trial_id)

    beating = threading.Thread(target=beat, name="raysearch-cache-claim", daemon=True)
    beating.start()
    try:
        cache = embed_training_records(teacher, data, cfg)
        ray.get(shared.keep.remote(name, cache))  # owned by the shared before this trial may end
    except BaseException:
        shared.drop.remote(name, trial_id)
        raise
    finally:
        stop.set()
    return cache, True


def _shared_object(shared, name: str):
    """The object the cluster put on its SharedObjects under `name`."""
    import ray

    (ref,) = ray.get(shared.get.remote(name))
    if ref is None:
        raise RuntimeError(f"nothing on the cluster's shared under {name!r}: put before the trial started?")
    return ray.get(ref)


def train_trial(config: dict, data=None, shared=None) -> None:
    """The Tune function trainable. `data`: ref of a PTBXL; `shared`: the cluster's SharedObjects, holding
    the teachers (`teacher/SIZE`) and their cached embeddings (`cache/KEY`, see embeddings_key)."""
    import ray
    from ray import tune

    cfg = trial_config(config)
    dataset = _resolve(data)
    teacher = _shared_object(shared, f"teacher/{cfg.embedding_size}") if cfg.stage == "student" else None
    cache, cache_seconds, computed = None, None, None
    if cfg.stage == "student" and cfg.teacher_cache:
        t0 = time.perf_counter()
        trial_id = tune.get_context().get_trial_id()
        cache, computed = shared_teacher_embeddings(shared, cfg.resolved(), teacher, dataset, trial_id)
        cache_seconds = time.perf_counter() - t0
    checkpoint = tune.get_checkpoint()
    resume = readable_state(checkpoint) if checkpoint is not None else None
    restarts = 0 if resume is None else int(resume.get("restarts", 0)) + 1
    node_id = ray.get_runtime_context().get_node_id()  # which node ran it (multi-node accounting)

    def report(metrics: dict, state) -> None:
        with tempfile.TemporaryDirectory() as d:
            torch.save({**state(), "restarts": restarts}, os.path.join(d, STATE_FILE))
            # restarts: how often this trial came back from a crash (FailureConfig) or a resume
            extra = {"restarts": restarts, "node_id": node_id}
            if cache is not None:  # how this trial got the teacher's embeddings, and how long it took
                extra.update(teacher_cache_computed=computed, teacher_cache_seconds=cache_seconds)
            tune.report(
                {**metrics, **extra},
                checkpoint=tune.Checkpoint.from_directory(d),
            )

    train_stage(cfg, dataset, teacher=teacher, on_epoch=report, resume=resume, cache=cache)
    if torch.cuda.is_available():  # actors are reused: give the GPU memory back to the next trial
        torch.cuda.empty_cache()


def readable_state(checkpoint) -> dict | None:
    """The training state of the trial's last checkpoint, or, if that one is damaged (a truncated
    file: a full disk, a killed copy), of the newest earlier one Tune kept: the trial then redoes
    the epochs after it, and says so. None when none is readable (the trial starts afresh)."""
    import pyarrow.fs as pafs

    try:
        return load_trial_state(checkpoint)
    except Exception as e:  # torch.load's many errors for a truncated or foreign file
        reason = first_line(e)
    fs = checkpoint.filesystem or pafs.LocalFileSystem()
    parent, name = os.path.split(checkpoint.path.rstrip("/"))
    found = fs.get_file_info(pafs.FileSelector(parent))
    earlier = sorted(
        (i.path for i in found if i.type == pafs.FileType.Directory and os.path.basename(i.path) < name),
        reverse=True,
    )
    for path in earlier:
        if not os.path.basename(path).startswith("checkpoint_"):
            continue
        try:
            state = load_trial_state(type(checkpoint)(path, filesystem=checkpoint.filesystem))
        except Exception:
            continue
        log.warning(
            f"raysearch: {checkpoint.path} is damaged ({reason}): resuming from {os.path.basename(path)}, "
            f"epoch {int(state['epoch']) + 1}, and redoing the epochs after it"
        )
        return state
    log.warning(
        f"raysearch: {checkpoint.path} is damaged ({reason}) and no earlier one is kept: "
        f"this trial starts afresh"
    )
    return None


def load_trial_state(checkpoint) -> dict:
    """The training state saved in a trial's Tune checkpoint (model, optimizer, config, ...)."""
    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=True)


def trained_network(result) -> SavedNetwork:
    """A finished trial's network (a Tune Result, or a Trial read like one) and its history."""
    state = load_trial_state(result.checkpoint)
    return SavedNetwork(
        state["config"], state["model_config"], state["data"], state["model"], state["history"]
    )
