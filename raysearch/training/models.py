"""The networks: ECG encoders, the metadata encoder, and the teacher/student network around them.

    net = ContrastiveNet(ModelConfig(arch="inception", n_leads=12, embedding_size=128))
    embedding, logits = net(x, meta)     # x: (B, leads, T), meta: (B, META_DIM)

Teacher and student are the same `ContrastiveNet`: ECG encoder || metadata encoder -> Linear ->
embedding -> MLP pseudo-classifier -> 5 logits. The teacher reads 12 leads with InceptionTime;
the student reads x leads with a *different* encoder (default: resnet1d) and, in the pseudo = True
arm, borrows the teacher's pseudo-classifier, frozen (training/stage.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from raysearch.data.metadata import META_DIM
from raysearch.training.config import ARCHS, TrainConfig


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network (saved as JSON beside its weights)."""

    arch: str = "inception"  # "inception" (InceptionTime) or "resnet1d"
    n_leads: int = 12
    width: int = 32  # inception: filters per branch; resnet1d: channels of the first stage
    depth: int = 6  # inception: modules; resnet1d: residual blocks
    kernels: tuple[int, ...] = (39, 19, 9)  # inception branch kernels; resnet1d uses kernels[-1]
    embedding_size: int = 128
    meta_dim: int = META_DIM
    meta_hidden: int = 32
    classifier_hidden: int = 128
    n_classes: int = 5
    dropout: float = 0.2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["kernels"] = tuple(d.get("kernels", cls.kernels))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @classmethod
    def of(cls, cfg: TrainConfig) -> ModelConfig:
        """The network a (resolved) stage config trains."""
        return cls(
            arch=cfg.arch,
            n_leads=len(cfg.lead_indices),
            width=cfg.width,
            depth=cfg.depth,
            embedding_size=cfg.embedding_size,
        )


class MaxPool(nn.Module):
    """Max-pool over time, computed as a 2D pool of height 1: the same numbers as nn.MaxPool1d,
    but torch.export keeps the record length dynamic through it (its max_pool1d fixes the length),
    so an exported model takes records of any length (deploy.py)."""

    def __init__(self, kernel: int, stride: int, padding: int):
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.max_pool2d(x.unsqueeze(2), (1, self.kernel), (1, self.stride), (0, self.padding))
        return y.squeeze(2)


def _same_conv(cin: int, cout: int, k: int) -> nn.Conv1d:
    return nn.Conv1d(cin, cout, k, padding=k // 2, bias=False)


class InceptionModule(nn.Module):
    """Bottleneck 1x1, three parallel convolutions (kernels 39/19/9) and a max-pool + 1x1 branch."""

    def __init__(self, cin: int, filters: int, bottleneck: int, kernels: tuple[int, ...]):
        super().__init__()
        self.bottleneck = nn.Conv1d(cin, bottleneck, 1, bias=False) if cin > 1 else nn.Identity()
        mid = bottleneck if cin > 1 else cin
        self.branches = nn.ModuleList(_same_conv(mid, filters, k) for k in kernels)
        self.pool_branch = nn.Sequential(
            MaxPool(3, stride=1, padding=1), nn.Conv1d(cin, filters, 1, bias=False)
        )
        self.out = nn.Sequential(nn.BatchNorm1d(filters * (len(kernels) + 1)), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(x)
        return self.out(torch.cat([b(z) for b in self.branches] + [self.pool_branch(x)], dim=1))


class InceptionTime(nn.Module):
    """InceptionTime (Fawaz et al. 2019): inception modules, a residual shortcut every 3, GAP."""

    def __init__(
        self, n_leads: int, filters: int = 32, depth: int = 6, kernels: tuple[int, ...] = (39, 19, 9)
    ):
        super().__init__()
        width = filters * (len(kernels) + 1)
        self.modules_ = nn.ModuleList(
            InceptionModule(n_leads if i == 0 else width, filters, filters, kernels) for i in range(depth)
        )
        self.shortcuts = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(n_leads if i == 0 else width, width, 1, bias=False), nn.BatchNorm1d(width)
            )
            for i in range(0, depth, 3)
            if i + 3 <= depth
        )
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        for i, module in enumerate(self.modules_):
            x = module(x)
            if i % 3 == 2 and i // 3 < len(self.shortcuts):
                x = torch.relu(x + self.shortcuts[i // 3](residual))
                residual = x
        return x.mean(dim=2)


class BasicBlock1d(nn.Module):
    """Two convolutions with a residual connection (the PTB-XL benchmark's resnet1d block)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm1d(cout),
            nn.ReLU(),
            _same_conv(cout, cout, k),
            nn.BatchNorm1d(cout),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv1d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm1d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNet1d(nn.Module):
    """A 1D ResNet: stem, `depth` basic blocks (channels doubling every two, stride 2), GAP."""

    def __init__(self, n_leads: int, width: int = 64, depth: int = 4, kernel: int = 5):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(n_leads, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            MaxPool(3, stride=2, padding=1),
        )
        blocks, cin = [], width
        for i in range(depth):
            cout = width * 2 ** (i // 2)
            blocks.append(BasicBlock1d(cin, cout, kernel, stride=2 if i % 2 == 1 else 1))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.out_features = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean(dim=2)


def build_encoder(cfg: ModelConfig) -> nn.Module:
    """The ECG encoder named by `cfg.arch`."""
    if cfg.arch == "inception":
        return InceptionTime(cfg.n_leads, cfg.width, cfg.depth, tuple(cfg.kernels))
    if cfg.arch == "resnet1d":
        return ResNet1d(cfg.n_leads, cfg.width, cfg.depth, cfg.kernels[-1])
    raise ValueError(f"unknown architecture {cfg.arch!r}: expected one of {', '.join(ARCHS)}")


class ContrastiveNet(nn.Module):
    """ECG features || metadata features -> Linear -> embedding -> MLP pseudo-classifier."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = build_encoder(cfg)
        self.meta = nn.Sequential(
            nn.Linear(cfg.meta_dim, cfg.meta_hidden),
            nn.ReLU(),
            nn.Linear(cfg.meta_hidden, cfg.meta_hidden),
            nn.ReLU(),
        )
        features = int(self.encoder.out_features)  # type: ignore[arg-type]  # set by both encoders
        self.project = nn.Linear(features + cfg.meta_hidden, cfg.embedding_size)
        self.classifier = nn.Sequential(
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.embedding_size, cfg.classifier_hidden),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.classifier_hidden, cfg.n_classes),
        )

    def embed(self, x: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([self.encoder(x), self.meta(meta)], dim=1))

    def forward(self, x: torch.Tensor, meta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.embed(x, meta)
        return v, self.classifier(v)
