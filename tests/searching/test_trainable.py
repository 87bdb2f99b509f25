"""The Tune trainable's own pieces: its config, its checkpoint format, a chosen trial's network."""

import tempfile
from types import SimpleNamespace

import torch
from ray import tune

from raysearch.searching.trainable import STATE_FILE, load_trial_state, trained_network, trial_config
from raysearch.training.config import TrainConfig
from raysearch.training.models import ContrastiveNet, ModelConfig


def test_trial_config_keeps_train_fields_only():
    cfg = trial_config({"stage": "baseline", "leads": "4", "lr": 0.01, "pseudo": False, "run": "x"})
    assert cfg == TrainConfig(stage="baseline", leads="4", lr=0.01)


def test_a_trial_checkpoint_gives_back_its_network():
    cfg = TrainConfig(stage="baseline", leads="2", width=4, depth=2, embedding_size=8).resolved()
    net = ContrastiveNet(ModelConfig.of(cfg))
    state = {
        "model": net.state_dict(),
        "config": vars(cfg),
        "model_config": net.cfg.to_dict(),
        "data": {"sampling_rate": 100, "mean": [0.0] * 12, "std": [1.0] * 12},
        "history": [{"epoch": 1}],
        "epoch": 0,
    }
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, f"{d}/{STATE_FILE}")
        checkpoint = tune.Checkpoint.from_directory(d)
        assert load_trial_state(checkpoint)["epoch"] == 0
        blob = trained_network(SimpleNamespace(checkpoint=checkpoint))
    assert blob.model_config == net.cfg.to_dict() and blob.history == [{"epoch": 1}]
    assert all(torch.equal(blob.weights[k], v) for k, v in net.state_dict().items())


def test_a_damaged_last_checkpoint_falls_back_to_the_one_before(tmp_path, caplog):
    from raysearch.searching.trainable import readable_state

    for epoch in (0, 1, 2):
        folder = tmp_path / f"checkpoint_00000{epoch}"
        folder.mkdir()
        torch.save({"epoch": epoch, "model": {}}, folder / STATE_FILE)
    last = tmp_path / "checkpoint_000002" / STATE_FILE
    last.write_bytes(last.read_bytes()[:40])  # a copy cut short (a full disk, a killed upload)
    state = readable_state(tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000002")))
    assert state["epoch"] == 1
    err = caplog.text
    assert "checkpoint_000002 is damaged" in err and "resuming from checkpoint_000001, epoch 2" in err
    for epoch in (0, 1):
        (tmp_path / f"checkpoint_00000{epoch}" / STATE_FILE).write_text("junk")
    assert readable_state(tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000002"))) is None
    assert "no earlier one is kept: this trial starts afresh" in caplog.text
