"""The training step: loss definitions, padding, cached teacher embeddings, and (on CUDA) the
step captured as one CUDA graph against the eager step."""

import copy
from contextlib import contextmanager
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from raysearch import UserError
from raysearch.data.ptbxl import load_ptbxl
from raysearch.training.batches import Signals, crop_grid, epoch_plan
from raysearch.training.config import TrainConfig
from raysearch.training.embeddings import embed_training_records
from raysearch.training.models import ContrastiveNet, ModelConfig
from raysearch.training.optimizer import make_optimizer
from raysearch.training.stage import train_stage
from raysearch.training.step import TrainStep, similarity

TINY = {"width": 8, "depth": 2, "embedding_size": 16, "batch_size": 32, "n_boot": 100, "lr": 3e-3}
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CUDA graphs)")


@pytest.fixture(scope="module")
def data(synthetic_ptbxl):
    return load_ptbxl(synthetic_ptbxl, progress=False)


@pytest.fixture(scope="module")
def teacher(data):
    return train_stage(TrainConfig(stage="teacher", epochs=2, **TINY), data).export()


@pytest.mark.parametrize("kind", ["l1", "l2", "cosine"])
def test_similarity_definitions(kind):
    a = torch.randn(4, 8)
    assert similarity(kind, a, a.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert similarity(kind, a, a + torch.randn(4, 8)).item() > 0
    b = a + 1.0
    expected = {"l1": 1.0, "l2": 1.0}
    if kind in expected:
        assert similarity(kind, a, b).item() == pytest.approx(expected[kind])
    else:
        assert similarity(kind, a, 3 * a).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
        assert similarity(kind, a, -a).item() == pytest.approx(2.0)


@pytest.mark.parametrize("kind", ["l1", "l2", "cosine"])
def test_weighted_similarity_ignores_weight_zero_records(kind):
    a, b = torch.randn(6, 8), torch.randn(6, 8)
    plain = similarity(kind, a, b).item()
    assert similarity(kind, a, b, torch.ones(6)).item() == pytest.approx(plain, rel=1e-6)
    w = torch.tensor([1.0, 1, 1, 1, 0, 0])
    assert similarity(kind, a, b, w).item() == pytest.approx(similarity(kind, a[:4], b[:4]).item(), rel=1e-6)


def _step(cfg, data, device="cpu", teacher=None, cache=None, graphed=False, resident=True):
    cfg = TrainConfig(**cfg).resolved()
    torch.manual_seed(0)
    net = ContrastiveNet(ModelConfig.of(cfg)).to(device)
    opt = make_optimizer([p for p in net.parameters() if p.requires_grad], cfg.lr, cfg.weight_decay, graphed)
    signals = Signals(data, torch.device(device), resident=resident)
    step = TrainStep(
        net, opt, signals, cfg.lead_indices, 250, cfg.precision, cfg.sim, cfg.alpha, teacher, cache, graphed
    )
    return step, net


def test_padding_at_weight_zero_leaves_the_loss_of_the_real_records(data):
    step, net = _step({"stage": "baseline", "leads": "3", "precision": "fp32", **TINY}, data)
    net.eval()  # batch norm in training mode would see the padding in its batch statistics
    rows = torch.from_numpy(np.sort(data.split("train")[:10]))
    starts = torch.arange(10) * 50
    padded = (torch.cat([rows, rows[:6]]), torch.cat([starts, starts[:6]]))
    weight = torch.cat([torch.ones(10), torch.zeros(6)])
    want = step._loss(rows, starts, None, None)
    got = step._loss(*padded, None, weight)
    for g, w in zip(got, want, strict=True):
        assert g.item() == pytest.approx(w.item(), rel=1e-5)


def test_cached_teacher_embeddings_give_the_teachers_similarity(data, teacher):
    """A student reading the cache computes the loss a student running the teacher computes on the
    same grid crops (fp32): the cache changes where crops start, not what is compared."""
    cfg = {"stage": "student", "leads": "4", "precision": "fp32", "sim": "l2", "teacher_cache": 7, **TINY}
    cache = embed_training_records(teacher, data, TrainConfig(**cfg))
    assert cache.embeddings.shape == (len(data.split("train")), 7, 16) and cache.dtype == "float32"
    assert list(cache.grid) == list(crop_grid(1000, 250, 7))
    from raysearch.training.checkpoint import import_net

    tnet = import_net(teacher, "teacher").eval()
    with_cache, net_a = _step(cfg, data, cache=cache.on(torch.device("cpu")))
    with_teacher, net_b = _step(cfg, data, teacher=tnet)
    net_a.eval(), net_b.eval()
    rows = np.sort(data.split("train")[5:21])
    positions = np.random.default_rng(0).integers(0, 7, size=len(rows))
    starts = cache.grid[positions]
    a = with_cache._loss(torch.from_numpy(rows), torch.from_numpy(starts), torch.from_numpy(positions), None)
    b = with_teacher._loss(torch.from_numpy(rows), torch.from_numpy(starts), None, None)
    assert a[2].item() == pytest.approx(b[2].item(), rel=1e-4) and a[2].item() > 0


@pytest.mark.slow  # trains four students
def test_a_student_trains_on_cached_embeddings(data, teacher):
    cfg = TrainConfig(stage="student", leads="4", epochs=4, alpha=0.5, teacher_cache=31, **TINY)
    result = train_stage(cfg, data, teacher=teacher)
    plain = train_stage(replace(cfg, teacher_cache=0), data, teacher=teacher)  # the teacher's forward
    assert result.history[-1]["sim_loss"] > 0
    assert result.history[-1]["val_macro_auc"] > 0.6  # chance is 0.5; this 2-epoch teacher is weak
    assert abs(result.history[-1]["val_macro_auc"] - plain.history[-1]["val_macro_auc"]) < 0.03
    given = embed_training_records(teacher, data, cfg)
    again = train_stage(cfg, data, teacher=teacher, cache=given)
    assert [h["train_loss"] for h in again.history] == [h["train_loss"] for h in result.history]
    other = TrainConfig(stage="student", leads="4", epochs=1, teacher_cache=31, **{**TINY, "batch_size": 16})
    train_stage(other, data, teacher=teacher, cache=given)  # the cache does not depend on the batch size
    with pytest.raises(UserError, match="this student asks for 11 crops of 250"):
        fewer = TrainConfig(stage="student", leads="4", epochs=1, teacher_cache=11, **TINY)
        train_stage(fewer, data, teacher=teacher, cache=given)
    with pytest.raises(UserError, match="teacher cache of 31 crops of 250 samples"):
        bad = TrainConfig(stage="student", leads="4", epochs=1, teacher_cache=31, crop_seconds=3.0, **TINY)
        train_stage(bad, data, teacher=teacher, cache=given)


def test_graphs_and_cache_settings_are_checked(data):
    with pytest.raises(UserError, match="graphs 'yes'"):
        TrainConfig(graphs="yes").resolved()
    with pytest.raises(UserError, match="teacher_cache -1"):
        TrainConfig(teacher_cache=-1).resolved()
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="graphs on: CUDA graphs need a CUDA device"):
            train_stage(TrainConfig(stage="baseline", leads="2", epochs=1, graphs="on", **TINY), data)


# ------------------------------------------------------ the graphed path, on a CPU (faked)


@pytest.fixture()
def fake_graphs(monkeypatch):
    """The graphed path on a CPU: `graphs` auto/on take it, and a "capture" runs the warm-up steps
    and returns the step itself as its replay (the same sums a graph computes), or raises
    `fake_graphs.fail`. `fake_graphs.captures` counts the captures."""
    from raysearch.training import stage as train_module
    from raysearch.training import step as step_module

    state = SimpleNamespace(fail=None, captures=0)

    def capture(step, device, warmup):
        state.captures += 1
        rng = torch.get_rng_state()
        for _ in range(warmup):
            step()
        torch.set_rng_state(rng)
        if state.fail:
            raise RuntimeError(state.fail)
        return step

    monkeypatch.setattr(step_module, "capture_graph", capture)
    monkeypatch.setattr(train_module, "use_graphs", lambda cfg, device: cfg.graphs != "off")
    step_module._KEPT.clear()
    yield state
    step_module._KEPT.clear()


def _losses(result) -> list[float]:
    return [h["train_loss"] for h in result.history]


def test_a_capture_that_fails_under_graphs_auto_goes_on_eagerly_and_is_not_kept(data, fake_graphs, caplog):
    from raysearch.training import step as step_module

    cfg = TrainConfig(stage="baseline", leads="3", epochs=2, **TINY)
    fake_graphs.fail = "operation not permitted when stream is capturing\nmore details"
    fell_back = train_stage(cfg, data)
    err = caplog.text
    assert (
        "graphs auto: capturing the training step failed (operation not permitted when stream is "
        "capturing); this trial continues eagerly" in err
    )
    assert [h["graphs"] for h in fell_back.history] == [False, False]
    assert step_module._KEPT == {}  # a step never captured is never handed to a later trial
    fake_graphs.fail = None
    captured = train_stage(cfg, data)  # the next trial of the same shapes captures afresh
    assert fake_graphs.captures == 2 and [h["graphs"] for h in captured.history] == [True, True]
    # the eager fallback computes what the graph computes: same plan, weights and sums
    np.testing.assert_allclose(_losses(fell_back), _losses(captured), rtol=1e-6)
    with pytest.raises(RuntimeError, match="stream is capturing"):  # graphs on: fail loudly
        fake_graphs.fail = "operation not permitted when stream is capturing"
        step_module._KEPT.clear()
        train_stage(replace(cfg, graphs="on"), data)


def _fresh_and_reused(data, first: TrainConfig, later: TrainConfig, fake_graphs, teachers=(None, None)):
    """`later` trained by the step `first` captured (as a reused actor would), and afresh."""
    from raysearch.training import step as step_module

    before = fake_graphs.captures
    train_stage(first, data, teacher=teachers[0])
    reused = train_stage(later, data, teacher=teachers[1])
    captures = fake_graphs.captures - before
    step_module._KEPT.clear()
    fresh = train_stage(later, data, teacher=teachers[1])
    return reused, fresh, captures


def test_a_reused_step_starts_every_trial_afresh(data, fake_graphs):
    """What a reused step carries over must be nothing a trial set: here one-cycle's last beta1 in
    a cosine trial, and another dataset of the same shapes."""
    onecycle = TrainConfig(stage="baseline", leads="2", epochs=2, seed=1, **TINY)
    cosine = replace(onecycle, schedule="cosine", seed=2)
    reused, fresh, captures = _fresh_and_reused(data, onecycle, cosine, fake_graphs)
    assert captures == 1  # the second trial reused the first one's step
    assert _losses(reused) == pytest.approx(_losses(fresh), rel=1e-6)
    other = replace(data, signals=np.ascontiguousarray(np.roll(data.signals, 37, axis=2)))
    train_stage(onecycle, data)
    on_other = train_stage(onecycle, other)  # same shapes: reused, and it must read `other`
    from raysearch.training import step as step_module

    step_module._KEPT.clear()
    assert _losses(on_other) == pytest.approx(_losses(train_stage(onecycle, other)), rel=1e-6)


def test_a_teacher_of_another_architecture_gets_its_own_step(data, teacher, fake_graphs):
    other = train_stage(TrainConfig(stage="teacher", epochs=1, **{**TINY, "width": 4}), data).export()
    cfg = TrainConfig(stage="student", leads="4", epochs=1, alpha=0.5, **TINY)
    reused, fresh, captures = _fresh_and_reused(data, cfg, cfg, fake_graphs, (teacher, other))
    assert captures == 2  # a new capture, not the other teacher's weights forced into the kept one
    assert _losses(reused) == pytest.approx(_losses(fresh), rel=1e-6)


def test_the_capture_runs_on_the_steps_own_device(monkeypatch):
    """cuda:N: the capture (and its warm-up) under that device, on a stream of that device; torch's
    default capture stream belongs to the device that was current when it was first made."""
    from raysearch.training.step import capture_graph

    seen = SimpleNamespace(current=[], capture_stream=None, calls=0)

    class Stream:
        def __init__(self, device=None):
            self.device = device

        def wait_stream(self, other):
            pass

    @contextmanager
    def device(d):
        seen.current.append(d)
        yield
        seen.current.pop()

    @contextmanager
    def graph(g, stream=None, **kwargs):
        seen.capture_stream = stream
        seen.capture_device = seen.current[-1] if seen.current else None
        yield

    fake = SimpleNamespace(
        device=device,
        Stream=Stream,
        stream=lambda s: contextmanager(lambda: (yield))(),
        current_stream=lambda d=None: Stream(d),
        get_rng_state=lambda d=None: None,
        set_rng_state=lambda state, d=None: None,
        CUDAGraph=lambda: SimpleNamespace(replay=lambda: None),
        graph=graph,
    )
    monkeypatch.setattr(torch, "cuda", fake)
    cuda1 = torch.device("cuda", 1)

    def step():
        seen.calls += 1

    capture_graph(step, cuda1, warmup=2)
    assert seen.calls == 3
    assert seen.capture_device == cuda1
    assert seen.capture_stream is not None and seen.capture_stream.device == cuda1


def test_fp16_is_refused_for_training(data):
    with pytest.raises(UserError, match="precision fp16: training in fp16 needs loss scaling"):
        train_stage(TrainConfig(stage="baseline", leads="2", epochs=1, precision="fp16", **TINY), data)


# ----------------------------------------------------------------------------------- CUDA


@CUDA
@pytest.mark.parametrize("stage", ["teacher", "student", "baseline"])
def test_graphed_step_matches_eager_over_50_steps(data, teacher, stage):
    cfg = {"stage": stage, "leads": "12" if stage == "teacher" else "4", "precision": "bf16", **TINY}
    from raysearch.training.checkpoint import import_net

    tnet = import_net(teacher, "teacher").cuda().eval() if stage == "student" else None
    for p in tnet.parameters() if tnet is not None else []:
        p.requires_grad_(False)
    eager, net_e = _step(cfg, data, "cuda", teacher=tnet)
    graphed, net_g = _step(cfg, data, "cuda", teacher=tnet, graphed=True)
    for net in (net_e, net_g):
        net.train()
        for m in net.modules():  # the same function both ways: no random dropout masks
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    rows = np.tile(data.split("train"), 5)[: 50 * 32]  # 50 full batches
    plan = epoch_plan(rows, np.random.default_rng(0), 32, 1000, 250, pad=True)
    losses = {}
    for name, step in (("eager", eager), ("graphed", graphed)):
        step.start_epoch(plan)
        before, out = torch.zeros(3, dtype=torch.float64, device="cuda"), []
        for first, last in plan.batches():
            step(first, last)
            out.append(((step.sums - before) / (last - first)).tolist())
            before = step.sums.clone()
        losses[name] = np.array(out)
    assert len(losses["eager"]) == 50
    np.testing.assert_allclose(losses["graphed"], losses["eager"], rtol=3e-2, atol=1e-3)


@CUDA
def test_a_resumed_graphed_trial_continues_where_it_stopped(data):
    cfg = TrainConfig(stage="baseline", leads="3", epochs=3, graphs="on", **TINY)
    full = train_stage(cfg, data)
    assert all(h["graphs"] for h in full.history)
    saved = {}

    def stop_after_first(metrics, state):
        saved.update(state())
        return True

    train_stage(cfg, data, on_epoch=stop_after_first)
    assert isinstance(saved["optimizer"]["param_groups"][0]["lr"], float)  # portable checkpoint
    resumed = train_stage(cfg, data, resume=saved)
    assert len(resumed.history) == 3
    np.testing.assert_allclose(
        [h["train_loss"] for h in resumed.history], [h["train_loss"] for h in full.history], rtol=5e-2
    )  # not bit-for-bit: the replays draw other dropout masks than a fresh capture's
    assert abs(resumed.history[-1]["val_macro_auc"] - full.history[-1]["val_macro_auc"]) < 0.03
    on_cpu = train_stage(replace(cfg, device="cpu", graphs="off"), data, resume=saved)  # and elsewhere
    assert len(on_cpu.history) == 3 and not on_cpu.history[-1]["graphs"]
    eager_saved = {}
    train_stage(replace(cfg, graphs="off"), data, on_epoch=lambda m, s: eager_saved.update(s()) or True)
    assert len(train_stage(cfg, data, resume=eager_saved).history) == 3  # an eager checkpoint, graphed


@CUDA
def test_a_later_trial_reuses_the_captured_step(data):
    from raysearch.training import step as step_module

    first = train_stage(TrainConfig(stage="baseline", leads="2", epochs=2, seed=1, **TINY), data)
    kept = {k: v.clone() for k, v in first.net.state_dict().items()}
    captured = next(iter(step_module._KEPT.values()))
    later = TrainConfig(stage="baseline", leads="2", epochs=2, seed=2, **{**TINY, "lr": 1e-3})
    second = train_stage(later, data)
    assert next(iter(step_module._KEPT.values())) is captured  # no second capture
    assert all(torch.equal(first.net.state_dict()[k], v) for k, v in kept.items())  # its result kept
    step_module._KEPT.clear()
    fresh = train_stage(later, data)
    np.testing.assert_allclose(
        [h["train_loss"] for h in second.history], [h["train_loss"] for h in fresh.history], rtol=5e-2
    )
    assert [h["lr"] for h in second.history] == pytest.approx([h["lr"] for h in fresh.history])


@CUDA
def test_each_trial_reports_its_own_memory_peak(data):
    """A reused actor's second, smaller trial reports its own peak, not the first one's."""
    big = train_stage(
        TrainConfig(stage="teacher", epochs=1, **{**TINY, "width": 32, "batch_size": 128}), data
    )
    small = train_stage(TrainConfig(stage="baseline", leads="2", epochs=1, **TINY), data)
    assert small.history[-1]["gpu_max_allocated_MiB"] < big.history[-1]["gpu_max_allocated_MiB"]


@CUDA
def test_evaluation_in_large_batches_equals_small_ones(data):
    from raysearch.training.evaluation import score_records

    result = train_stage(TrainConfig(stage="baseline", leads="4", epochs=1, **TINY), data)
    signals, rows = Signals(data, result.device), data.split("val")
    big = score_records(result.net, signals, rows, result.cfg)
    small = score_records(result.net, signals, rows, result.cfg, batch_records=16)
    np.testing.assert_allclose(big, small, atol=1e-2)


def test_capturable_adamw_follows_torchs_adamw_under_one_cycle():
    """The graph's optimizer (tensor lr and beta1, foreach kernels) makes the updates of
    torch.optim.AdamW while one-cycle moves the learning rate and beta1 every step."""
    from raysearch.training.optimizer import CapturableAdamW, load_optimizer_state

    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    net = copy.deepcopy(ref)
    opts = [
        torch.optim.AdamW(ref.parameters(), lr=3e-3, weight_decay=0.05),
        CapturableAdamW(net.parameters(), torch.tensor(3e-3), torch.tensor(0.9), weight_decay=0.05),
    ]
    beta1_t = opts[1].beta1_tensor
    opts[1].param_groups[0]["lr"] = 3e-3  # as train_stage does: the scheduler starts from floats
    scheds = [torch.optim.lr_scheduler.OneCycleLR(o, max_lr=3e-3, total_steps=40) for o in opts]
    opts[1].keep_tensor_hyperparameters()
    for i in range(40):
        x = torch.randn(16, 6)
        for model, opt, sched in zip((ref, net), opts, scheds, strict=True):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
            sched.step()
        opts[1].keep_tensor_hyperparameters()
        if i == 20:  # a checkpoint of one loads into the other
            load_optimizer_state(opts[1], opts[0].state_dict())
    assert beta1_t.item() == pytest.approx(opts[0].param_groups[0]["betas"][0])
    for a, b in zip(ref.parameters(), net.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    assert float(opts[1].state[next(net.parameters())]["step"]) == 40
