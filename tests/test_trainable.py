"""The Tune trainable's own pieces: its config, its checkpoint format, a chosen trial's network."""

import tempfile
from types import SimpleNamespace

import torch
from ray import tune

from raysearch.models import ContrastiveNet
from raysearch.train import TrainConfig
from raysearch.trainable import STATE_FILE, load_trial_state, result_blob, trial_config


def test_trial_config_keeps_train_fields_only():
    cfg = trial_config({"stage": "baseline", "leads": "4", "lr": 0.01, "pseudo": False, "run": "x"})
    assert cfg == TrainConfig(stage="baseline", leads="4", lr=0.01)


def test_a_trial_checkpoint_gives_back_its_network():
    cfg = TrainConfig(stage="baseline", leads="2", width=4, depth=2, embedding_size=8).resolved()
    net = ContrastiveNet(cfg.model_config())
    state = {"model": net.state_dict(), "config": vars(cfg), "history": [{"epoch": 1}], "epoch": 0}
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, f"{d}/{STATE_FILE}")
        checkpoint = tune.Checkpoint.from_directory(d)
        assert load_trial_state(checkpoint)["epoch"] == 0
        blob = result_blob(SimpleNamespace(checkpoint=checkpoint))
    assert blob["model_config"] == net.cfg.to_dict() and blob["history"] == [{"epoch": 1}]
    assert all(torch.equal(blob["model"][k], v) for k, v in net.state_dict().items())
