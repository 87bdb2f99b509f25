"""Epoch plans, device-resident batches and the teacher-embedding cache's lookup."""

import numpy as np
import pytest
import torch

from raysearch.data.ptbxl import load_ptbxl
from raysearch.training.batches import Signals, crop_grid, epoch_plan
from raysearch.training.embeddings import TeacherEmbeddings


@pytest.fixture(scope="module")
def data(synthetic_ptbxl):
    return load_ptbxl(synthetic_ptbxl, progress=False)


def test_signals_on_the_device_equal_the_host_batches(data):
    """The GPU path (samples resident on the device) computes what the host path and
    PTBXL.standardized compute; checked on the CPU with the resident code path."""
    cpu = torch.device("cpu")
    host, resident = Signals(data, cpu, resident=False), Signals(data, cpu, resident=True)
    rows, leads = np.sort(data.split("train")[:9]), (0, 1, 7)
    full = data.standardized(rows, leads)
    assert torch.equal(host.batch(rows, leads), torch.from_numpy(full))
    assert torch.equal(resident.batch(rows, leads), torch.from_numpy(full))
    starts = np.random.default_rng(0).integers(0, 750, size=len(rows))
    crop = np.stack([full[i, :, a : a + 250] for i, a in enumerate(starts)])
    assert torch.equal(host.batch(rows, leads, starts, 250), torch.from_numpy(crop))
    assert torch.equal(resident.batch(rows, leads, starts, 250), torch.from_numpy(crop))


def test_an_epoch_plan_draws_what_the_batch_loop_drew():
    """Sorted rows per batch and one crop start per record, from the same generator calls the
    training loop made batch by batch (CPU results stay bit-for-bit what they were)."""
    rows = np.arange(100, 203)
    plan = epoch_plan(rows, np.random.default_rng([3, 1]), 32, 1000, 250)
    rng = np.random.default_rng([3, 1])
    order = rng.permutation(rows)
    for first, last in plan.batches():
        want = np.sort(order[first:last])
        assert np.array_equal(plan.rows[first:last], want)
        assert np.array_equal(plan.starts[first:last], rng.integers(0, 751, size=len(want)))
    assert plan.records == 103 and len(plan.rows) == 103 and plan.weights.min() == 1
    assert plan.positions is None
    assert epoch_plan(rows, np.random.default_rng(0), 32, 1000, 1000).starts is None  # whole records


def test_padding_fills_the_last_batch_at_weight_zero():
    rows = np.arange(50)
    plan = epoch_plan(rows, np.random.default_rng(0), 16, 1000, 250, pad=True)
    assert len(plan.rows) == 64 and plan.records == 50
    assert [b - a for a, b in plan.batches()] == [16, 16, 16, 16]
    assert plan.weights[:50].min() == 1 and plan.weights[50:].max() == 0
    assert sorted(plan.rows[:50]) == list(rows)  # every record once at full weight
    assert np.array_equal(plan.rows[50:], plan.rows[:14])
    assert np.array_equal(plan.starts[50:], plan.starts[:14])
    small = epoch_plan(np.arange(5), np.random.default_rng(0), 16, 1000, 250, pad=True)
    assert len(small.rows) == 16 and small.weights.sum() == 5
    assert len(epoch_plan(np.arange(64), np.random.default_rng(0), 16, 1000, 250, pad=True).rows) == 64


def test_a_crop_grid_and_plans_on_it():
    grid = crop_grid(1000, 250, 31)
    assert len(grid) == 31 and grid[0] == 0 and grid[-1] == 750 and np.all(np.diff(grid) == 25)
    assert list(crop_grid(1000, 1000, 31)) == [0]
    assert list(crop_grid(1000, 250, 1)) == [0]
    plan = epoch_plan(np.arange(40), np.random.default_rng(0), 16, 1000, 250, grid=grid)
    assert np.array_equal(plan.starts, grid[plan.positions])
    assert len(np.unique(plan.positions)) > 10


def test_cached_embeddings_are_looked_up_by_row_and_position():
    emb = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
    cache = TeacherEmbeddings(np.array([0, 1, 2, 3]), 2, np.array([5, 7, 9]), emb, "float32")
    got = cache.on(torch.device("cpu")).lookup(torch.tensor([9, 5]), torch.tensor([1, 3]))
    assert torch.equal(got, torch.from_numpy(emb[[2, 0], [1, 3]]))
    bf = torch.from_numpy(emb).to(torch.bfloat16)
    cache = TeacherEmbeddings(np.arange(4), 2, np.array([5, 7, 9]), bf.view(torch.uint16).numpy(), "bfloat16")
    got = cache.on(torch.device("cpu")).lookup(torch.tensor([7]), torch.tensor([2]))
    assert torch.equal(got, bf[1, 2][None].float())
