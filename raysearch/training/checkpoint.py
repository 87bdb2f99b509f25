"""A trained network as plain data, and its files (model.pt + config.json).

    saved = export_net(net, cfg, data)         # SavedNetwork: config, model_config, data, weights
    save_checkpoint("runs/teacher", saved)     # model.pt (weights only) + config.json
    saved = load_checkpoint("runs/teacher")    # a UserError for anything that is not ours
    net = import_net(saved)

`data` records what a network needs to read new ECGs the way it was trained: the sampling rate
and the training folds' per-lead mean and std (mV). The same record is what Ray's object store
holds for a teacher. StageResult is a finished stage: its network, configuration and history.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from raysearch.errors import UserError, first_line
from raysearch.files import write_text, write_with
from raysearch.training.config import TrainConfig, stored_config
from raysearch.training.models import ContrastiveNet, ModelConfig


def data_stats(data) -> dict:
    """What a network must know of its training data (a PTBXL) to read new records."""
    return {
        "sampling_rate": int(data.sampling_rate),
        "mean": [float(v) for v in data.mean],
        "std": [float(v) for v in data.std],
    }


@dataclass
class SavedNetwork:
    """A trained network as plain data: what a model folder holds, what Ray's object store holds
    for a teacher, what a trial's checkpoint gives back."""

    config: dict  # its TrainConfig, as a dict
    model_config: dict  # models.ModelConfig, as a dict
    data: dict | None  # data_stats of its training data: what it needs to read new records
    weights: dict  # the state dict
    history: list = field(default_factory=list)  # per-epoch metrics, when known
    scores: dict = field(default_factory=dict)  # val/test macro-AUC (metrics.json), carried by exports

    @property
    def embedding_size(self) -> int:
        return int(self.model_config["embedding_size"])


def export_net(net: ContrastiveNet, cfg, data=None) -> SavedNetwork:
    """A network as plain data: its TrainConfig (a dataclass), model config, data stats, weights."""
    return SavedNetwork(
        config=asdict(cfg),
        model_config=net.cfg.to_dict(),
        data=data_stats(data) if data is not None else None,
        weights={k: v.detach().cpu() for k, v in net.state_dict().items()},
    )


def import_net(saved: SavedNetwork, source: str = "checkpoint") -> ContrastiveNet:
    """Rebuild a network from a SavedNetwork; a mismatch of weights and config is a UserError."""
    cfg = ModelConfig.from_dict(saved.model_config)
    try:
        net = ContrastiveNet(cfg)
        net.load_state_dict(saved.weights)
    except (RuntimeError, ValueError) as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise UserError(
            f"{source}: weights do not match its config (arch {cfg.arch}, "
            f"{cfg.n_leads} leads, embedding {cfg.embedding_size}): {first}"
        ) from None
    return net


def save_checkpoint(run_dir: str | os.PathLike, saved: SavedNetwork) -> Path:
    """Write `model.pt` (the state dict) and `config.json` (stage, model config, data stats, and the
    per-epoch history when known)."""
    run_dir = Path(run_dir)
    write_with(run_dir / "model.pt", lambda tmp: torch.save(saved.weights, tmp))
    meta: dict = {"config": saved.config, "model_config": saved.model_config}
    if saved.data is not None:
        meta["data"] = saved.data
    if saved.history:  # per-epoch metrics: a kept run's training time and curve, read back by a report
        meta["history"] = saved.history
    write_text(run_dir / "config.json", json.dumps(meta, indent=1))
    return run_dir / "model.pt"


def load_checkpoint(path: str | os.PathLike) -> SavedNetwork:
    """Read a checkpoint written by `save_checkpoint` (a run dir or its model.pt), weights_only."""
    path = Path(path)
    run_dir = path if path.is_dir() else path.parent
    weights, config = run_dir / "model.pt", run_dir / "config.json"
    for f in (weights, config):
        if not f.is_file():
            raise UserError(f"{f}: missing; expected a raysearch checkpoint (model.pt + config.json)")
    try:
        meta = json.loads(config.read_text())
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types for what is not a checkpoint (empty: IndexError)
        first = first_line(e)
        raise UserError(
            f"{run_dir}: unreadable checkpoint ({first}); expected raysearch's model.pt"
        ) from None
    if not isinstance(meta, dict) or "model_config" not in meta or not isinstance(state, dict):
        raise UserError(f"{config}: not a raysearch checkpoint config")
    settings = stored_config(meta["config"], str(config))
    return SavedNetwork(settings, meta["model_config"], meta.get("data"), state, meta.get("history") or [])


def load_teacher(path: str | os.PathLike) -> SavedNetwork:
    """`--teacher PATH`: a checkpoint, or a search's RUN_DIR whose teachers/ holds one embedding
    size (with several, the error names them: each is its own checkpoint, teachers/SIZE)."""
    return load_checkpoint(teacher_checkpoint(path))


def teacher_checkpoint(path: str | os.PathLike) -> Path:
    """Where `--teacher PATH`'s checkpoint is: PATH, or RUN_DIR/teachers/SIZE of a search's RUN_DIR."""
    path = Path(path)
    if path.is_dir() and not (path / "model.pt").exists():
        sizes = sorted(p.name for p in (path / "teachers").glob("*") if (p / "model.pt").is_file())
        if len(sizes) > 1:
            raise UserError(
                f"--teacher {path}: a search's RUN_DIR with teachers of embedding sizes {', '.join(sizes)}; "
                f"give one of them, e.g. --teacher {path / 'teachers' / sizes[0]}"
            )
        if sizes:
            path = path / "teachers" / sizes[0]
    return path


def check_teacher(teacher: SavedNetwork, source: str, embedding_size: int | None = None) -> None:
    """A student's teacher must be a 12-lead teacher (with the student's embedding size, if given)."""
    tcfg = teacher.config
    if tcfg.get("stage") != "teacher" or teacher.model_config["n_leads"] != 12:
        raise UserError(
            f"{source}: a {tcfg.get('stage')} on leads {tcfg.get('leads')}; "
            f"expected a 12-lead teacher checkpoint"
        )
    if embedding_size is not None and teacher.embedding_size != embedding_size:
        raise UserError(
            f"{source}: embedding size {teacher.embedding_size}, but the student "
            f"asks for {embedding_size}; expected the same size (or omit --embedding-size)"
        )


@dataclass
class StageResult:
    """What a finished (or stopped) stage leaves: the network and its per-epoch history."""

    cfg: TrainConfig
    net: ContrastiveNet
    history: list
    device: torch.device
    data: dict | None = None  # checkpoint.data_stats of the training data

    def export(self) -> SavedNetwork:
        return replace(export_net(self.net, self.cfg), data=self.data, history=list(self.history))
