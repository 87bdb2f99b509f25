"""Network files: the round trip through model.pt + config.json, and what is refused."""

import json

import numpy as np
import pytest
import torch

from raysearch.data.ptbxl import load_ptbxl
from raysearch.errors import UserError
from raysearch.training.checkpoint import (
    check_teacher,
    export_net,
    import_net,
    load_checkpoint,
    load_teacher,
    save_checkpoint,
)
from raysearch.training.config import TrainConfig
from raysearch.training.models import ContrastiveNet, ModelConfig


def _net(stage="teacher", leads="12", size=16):
    cfg = TrainConfig(stage=stage, leads=leads, width=4, depth=3 if stage == "teacher" else 2).resolved()
    cfg.embedding_size = size
    torch.manual_seed(0)
    return ContrastiveNet(ModelConfig.of(cfg)), cfg


def test_round_trip_keeps_weights_config_and_data_stats(tmp_path, synthetic_ptbxl):
    data = load_ptbxl(synthetic_ptbxl, progress=False)
    net, cfg = _net()
    save_checkpoint(tmp_path / "run", export_net(net, cfg, data))
    blob = load_checkpoint(tmp_path / "run" / "model.pt")  # the file or its folder
    assert blob.config["stage"] == "teacher" and blob.embedding_size == 16
    assert blob.data["sampling_rate"] == 100
    assert np.allclose(blob.data["mean"], data.mean) and np.allclose(blob.data["std"], data.std)
    again = import_net(blob).eval()
    x, meta = torch.randn(3, 12, 250), torch.rand(3, net.cfg.meta_dim)
    with torch.no_grad():
        assert torch.equal(net.eval()(x, meta)[1], again(x, meta)[1])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"] == blob.data
    assert blob.history == []  # none known: none written
    kept = export_net(net, cfg, data)
    kept.history = [{"epoch": 1, "val_macro_auc": 0.7, "epoch_seconds": 3.0}]
    save_checkpoint(tmp_path / "kept", kept)  # a finalist's run, kept for the report: its curve too
    assert load_checkpoint(tmp_path / "kept").history == kept.history


def test_what_is_not_ours_is_a_one_line_error(tmp_path):
    net, cfg = _net()
    wrong = export_net(net, cfg)
    wrong.model_config = {**wrong.model_config, "arch": "resnet1d"}
    with pytest.raises(UserError, match="weights do not match its config"):
        import_net(wrong, "ckpt")
    with pytest.raises(UserError, match="model.pt: missing"):
        load_checkpoint(tmp_path / "nothing")
    save_checkpoint(tmp_path / "run", export_net(net, cfg))
    (tmp_path / "run" / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable checkpoint"):
        load_checkpoint(tmp_path / "run")
    save_checkpoint(tmp_path / "run", export_net(net, cfg))
    for content in (b"", b"not a checkpoint" * 8, b"PK\x03\x04" + bytes(60)):  # empty, text, broken zip
        (tmp_path / "run" / "model.pt").write_bytes(content)
        with pytest.raises(UserError, match="unreadable checkpoint .*; expected raysearch's model.pt"):
            load_checkpoint(tmp_path / "run")


def test_check_teacher():
    teacher, tcfg = _net()
    student, scfg = _net("baseline", "4")
    check_teacher(export_net(teacher, tcfg), "t", 16)
    with pytest.raises(UserError, match="expected a 12-lead teacher"):
        check_teacher(export_net(student, scfg), "s")
    with pytest.raises(UserError, match="embedding size 16, but the student asks for 32"):
        check_teacher(export_net(teacher, tcfg), "t", 32)


def test_a_searchs_run_dir_gives_its_teacher_when_it_has_one_size(tmp_path):
    net, cfg = _net(size=16)
    save_checkpoint(tmp_path / "search" / "teachers" / "16", export_net(net, cfg))
    assert load_teacher(tmp_path / "search").embedding_size == 16
    assert load_teacher(tmp_path / "search" / "teachers" / "16").embedding_size == 16
    net, cfg = _net(size=32)
    save_checkpoint(tmp_path / "search" / "teachers" / "32", export_net(net, cfg))
    with pytest.raises(UserError, match=r"sizes 16, 32; give one of them, e\.g\. --teacher .*teachers/16"):
        load_teacher(tmp_path / "search")


def test_a_retired_setting_is_read_and_an_unknown_one_refused(tmp_path):
    import json

    from raysearch.training.checkpoint import load_checkpoint, save_checkpoint

    net, cfg = _net()
    save_checkpoint(tmp_path / "old", export_net(net, cfg))
    path = tmp_path / "old" / "config.json"
    meta = json.loads(path.read_text())
    meta["config"]["extra"] = {}  # what the version before wrote into every configuration
    path.write_text(json.dumps(meta))
    assert "extra" not in load_checkpoint(tmp_path / "old").config
    meta["config"]["extra"] = {"x": 1}
    meta["config"]["mixup"] = 0.2
    path.write_text(json.dumps(meta))
    with pytest.raises(UserError, match=r"config.json: setting\(s\) extra, mixup unknown to this version"):
        load_checkpoint(tmp_path / "old")
