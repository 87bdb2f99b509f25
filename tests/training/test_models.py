"""Network shapes and the architectures' structure."""

import pytest
import torch
from torch import nn

from raysearch.training.models import ContrastiveNet, InceptionTime, MaxPool, ModelConfig, ResNet1d


@pytest.mark.parametrize(
    "arch,leads", [("inception", 12), ("resnet1d", 4), ("inception", 2), ("resnet1d", 12)]
)
def test_shapes(arch, leads):
    net = ContrastiveNet(ModelConfig(arch=arch, n_leads=leads, width=8, depth=3, embedding_size=16))
    v, logits = net(torch.randn(3, leads, 250), torch.randn(3, net.cfg.meta_dim))
    assert v.shape == (3, 16) and logits.shape == (3, 5)


def test_inception_time_structure():
    enc = InceptionTime(12, filters=32, depth=6)
    assert enc.out_features == 128  # 4 branches x 32 filters
    assert len(enc.modules_) == 6 and len(enc.shortcuts) == 2  # a residual every 3 modules
    kernels = sorted(c.kernel_size[0] for c in enc.modules_[0].branches)
    assert kernels == [9, 19, 39]
    assert enc(torch.randn(2, 12, 1000)).shape == (2, 128)


def test_resnet_is_a_different_cnn():
    enc = ResNet1d(4, width=16, depth=4)
    assert enc.out_features == 32 and enc(torch.randn(2, 4, 250)).shape == (2, 32)


def test_config_round_trip():
    cfg = ModelConfig(arch="resnet1d", n_leads=3, kernels=(5, 3))
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("stride", [1, 2])
def test_max_pool_is_max_pool_1d_that_exports_any_length(stride):
    x = torch.randn(2, 3, 207)
    assert torch.equal(MaxPool(3, stride, 1)(x), nn.MaxPool1d(3, stride, 1)(x))
    length = torch.export.Dim("samples", min=16)
    program = torch.export.export(MaxPool(3, stride, 1), (x,), dynamic_shapes=({2: length},))
    y = torch.randn(2, 3, 1001)  # another length through the exported graph
    assert torch.equal(program.module()(y), nn.MaxPool1d(3, stride, 1)(y))
