"""One stage's settings as plain data (TrainConfig: what Tune samples and checkpoints record), and
the few decisions that follow from them: the device, graphs or not, mixed precision, the crop
and evaluation windows, seeds.

A stage is what is trained: the 12-lead teacher, a student (pseudo = True: the teacher's frozen
pseudo-classifier and the similarity term) or the baseline (pseudo = False, the same network
without teacher). An arm is the student or the baseline of one lead subset: the two sides of a
comparison. What chooses a configuration is METRIC, the validation macro-AUC.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from raysearch.data.dataset import DataOptions
from raysearch.data.schema import RECORD_SECONDS, lead_label, parse_leads
from raysearch.errors import UserError

if TYPE_CHECKING:
    from raysearch.data.ptbxl import PTBXL

# What chooses a configuration: validation (fold 9) macro-AUC, higher is better.
METRIC, MODE = "val_macro_auc", "max"
# A stage is what is trained; an arm is one side of the comparison for a lead subset.
STAGES = ("teacher", "student", "baseline")
ARMS = ("student", "baseline")
PSEUDO = {"teacher": None, "student": True, "baseline": False}  # the paper's name for each stage
SIMS = ("l1", "l2", "cosine")
ARCHS = ("inception", "resnet1d")  # the teacher's InceptionTime, the students' resnet1d
SEED_RANGE = 2**32  # seeds are 0 .. 2^32 - 1 (what NumPy's and Optuna's generators take)


def arm_name(stage: str, leads: str) -> str:
    """The name of one arm's search (and of its folder under RUN_DIR): 'student-4', 'teacher-12'."""
    return f"{stage}-{leads}"


def derived_seed(seed: int, offset: int) -> int:
    """A seed made from another (a lead subset's searcher, a report's retraining seed): wrapped
    into SEED_RANGE, so a --seed near the top stays a valid seed."""
    return (seed + offset) % SEED_RANGE


PRECISIONS = ("fp32", "bf16", "fp16")  # what a model may be evaluated in
TRAIN_PRECISIONS = ("fp32", "bf16")  # fp16 would need loss scaling (a GradScaler) to train
GRAPHS = ("auto", "on", "off")


# Width/depth defaults per architecture: the teacher is InceptionTime, the student a resnet1d.
ARCH_DEFAULTS = {"inception": {"width": 32, "depth": 6}, "resnet1d": {"width": 64, "depth": 4}}


@dataclass
class TrainConfig:
    """One stage's settings, as plain data (it is what Tune samples and what checkpoints record)."""

    stage: str = "teacher"  # teacher | student (pseudo = True) | baseline (pseudo = False)
    leads: str = "12"
    arch: str = ""  # default: inception for the teacher, resnet1d for student and baseline
    width: int = 0  # 0: the architecture's default (ARCH_DEFAULTS)
    depth: int = 0
    embedding_size: int = 128
    alpha: float = 1.0
    sim: str = "cosine"
    lr: float = 1e-3
    weight_decay: float = 1e-2
    epochs: int = 10
    batch_size: int = 64
    schedule: str = "onecycle"  # onecycle | cosine
    crop_seconds: float = 2.5  # 0: train on the whole 10 s
    eval_stride_seconds: float = 0.0  # 0: windows side by side (stride = crop)
    precision: str = "bf16"
    graphs: str = "auto"  # the step as one CUDA graph: auto (on for CUDA) | on | off
    teacher_cache: int = 0  # student: teacher embeddings precomputed at this many crop positions; 0: off
    device: str = "auto"
    threads: int = 0  # torch threads; 0: torch's default
    seed: int = 0
    n_boot: int = 1000

    def resolved(self) -> TrainConfig:
        """Validate and fill the architecture defaults; raises UserError naming the bad value."""
        if self.stage not in STAGES:
            raise UserError(f"stage {self.stage!r}: expected one of {', '.join(STAGES)}")
        arch = self.arch or ("inception" if self.stage == "teacher" else "resnet1d")
        if arch not in ARCHS:
            raise UserError(f"architecture {arch!r}: expected one of {', '.join(ARCHS)}")
        if self.sim not in SIMS:
            raise UserError(f"similarity {self.sim!r}: expected one of {', '.join(SIMS)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if self.graphs not in GRAPHS:
            raise UserError(f"graphs {self.graphs!r}: expected one of {', '.join(GRAPHS)}")
        if not isinstance(self.teacher_cache, int) or self.teacher_cache < 0:
            raise UserError(f"teacher_cache {self.teacher_cache!r}: expected a number of crop positions >= 0")
        if self.schedule not in ("onecycle", "cosine"):
            raise UserError(f"schedule {self.schedule!r}: expected onecycle or cosine")
        leads = parse_leads(self.leads)
        if self.stage == "teacher" and len(leads) != 12:
            raise UserError(f"leads {self.leads!r}: the teacher reads all 12 leads")
        for name in ("epochs", "batch_size", "embedding_size", "n_boot"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} {getattr(self, name)}: expected a positive integer")
        for name in ("width", "depth", "threads"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} {getattr(self, name)}: expected an integer >= 0 (0: the default)")
        if not (self.lr > 0 and self.alpha >= 0 and self.weight_decay >= 0):
            raise UserError(
                f"lr {self.lr} / alpha {self.alpha} / weight_decay {self.weight_decay}: expected lr > 0, "
                f"alpha >= 0 and weight_decay >= 0"
            )
        if not 0 <= self.seed < 2**32:
            raise UserError(f"seed {self.seed}: expected 0 to 2^32 - 1")
        for name in ("crop_seconds", "eval_stride_seconds"):
            if not 0 <= getattr(self, name) <= RECORD_SECONDS:
                raise UserError(
                    f"{name} {getattr(self, name)}: expected 0 to {RECORD_SECONDS} seconds (PTB-XL's "
                    f"records are {RECORD_SECONDS} s; 0: the whole record)"
                )
        return replace(
            self,
            arch=arch,
            leads=lead_label(leads),
            width=self.width or ARCH_DEFAULTS[arch]["width"],
            depth=self.depth or ARCH_DEFAULTS[arch]["depth"],
        )

    @property
    def lead_indices(self) -> tuple[int, ...]:
        """The leads this stage reads, as indices in PTB-XL order (the label parsed once, here)."""
        return parse_leads(self.leads)


@dataclass
class TrainOptions(DataOptions):
    """`python -m raysearch train`: one stage into its own RUN_DIR, without Ray.

    The stage follows from the options: a `teacher` checkpoint trains a student (pseudo = True),
    `baseline` the same network without teacher (pseudo = False), neither the 12-lead teacher.
    `config` holds the other TrainConfig fields (leads, lr, epochs, ...).
    """

    out: str = ""
    teacher: str | None = None
    baseline: bool = False
    embedding_size: int | None = None  # None: the teacher's, else TrainConfig's default
    threshold_rule: str = "f1"  # how the model's per-class thresholds are fitted on validation
    config: dict = field(default_factory=dict)


# Settings an earlier raysearch saved with every configuration, with the one value they ever had:
# a model folder or run that holds them is read as if they were absent.
RETIRED: dict[str, object] = {"extra": {}}


def stored_config(config: dict, where: str) -> dict:
    """A configuration read from a file (a model folder's config.json, a run's): settings this
    version retired are dropped when they hold their only value; any other unknown setting is a
    UserError naming the file, never silently ignored."""
    config = {k: v for k, v in config.items() if not (k in RETIRED and v == RETIRED[k])}
    unknown = sorted(set(config) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise UserError(
            f"{where}: setting(s) {', '.join(unknown)} unknown to this version of raysearch; expected "
            f"a configuration this version wrote (or one it can read)"
        )
    return config


def _window_starts(total: int, length: int, stride: int) -> list[int]:
    """Sliding-window starts covering the whole record (the last window ends at its end)."""
    if length >= total:
        return [0]
    starts = list(range(0, total - length + 1, stride))
    return starts if starts[-1] == total - length else starts + [total - length]


def window_size(cfg: TrainConfig, sampling_rate: int) -> tuple[int, int]:
    """Evaluation window length and stride in samples; length 0: the whole record is one window."""
    length = int(cfg.crop_seconds * sampling_rate) if cfg.crop_seconds else 0
    return length, int((cfg.eval_stride_seconds or cfg.crop_seconds or 10) * sampling_rate)


def window_geometry(cfg: TrainConfig, sampling_rate: int, total: int) -> tuple[int, list[int]]:
    """Evaluation windows of a record of `total` samples: (window length, window starts)."""
    length, stride = window_size(cfg, sampling_rate)
    length = length or total
    return length, _window_starts(total, length, stride)


def crop_length(cfg: TrainConfig, data: PTBXL) -> int:
    """Training crop length in samples: the evaluation window, or the whole record."""
    return window_size(cfg, data.sampling_rate)[0] or data.signals.shape[2]
