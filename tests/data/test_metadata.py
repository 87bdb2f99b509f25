"""The soft label encoding of age, sex, height and weight."""

import numpy as np
import torch

from raysearch.data.metadata import (
    AGE_CENTRES,
    HEIGHT_CENTRES,
    META_DIM,
    WEIGHT_CENTRES,
    encode_metadata,
    encode_metadata_tensor,
)

NA = float("nan")
A, S, H = len(AGE_CENTRES) + 1, 3, len(HEIGHT_CENTRES) + 1


def test_shape_and_memberships_sum_to_one():
    m = encode_metadata([56, 70], [0, 1], [170, NA], [80, 60])
    assert m.shape == (2, META_DIM) and m.dtype == np.float32
    assert np.allclose(m[:, : A - 1].sum(axis=1), 1.0)
    assert np.allclose(m[0, A + S : A + S + H - 1].sum(), 1.0)


def test_missing_values_are_an_indicator_not_a_value():
    m = encode_metadata([NA], [NA], [NA], [NA])[0]
    assert m[A - 1] == 1 and not m[: A - 1].any()  # age missing
    assert m[A + 2] == 1 and not m[A : A + 2].any()  # sex missing
    assert m[A + S + H - 1] == 1 and not m[A + S : A + S + H - 1].any()  # height missing
    assert m[-1] == 1 and not m[-len(WEIGHT_CENTRES) - 1 : -1].any()  # weight missing


def test_implausible_values_are_missing():
    m = encode_metadata([50], [1], [6.0], [5000.0])[0]  # PTB-XL has a height of 6 cm
    assert m[A + S + H - 1] == 1 and m[-1] == 1


def test_soft_membership_is_ordinal():
    m = encode_metadata([64, 66, 30], [0, 0, 0], [NA] * 3, [NA] * 3)[:, : A - 1]
    assert np.abs(m[0] - m[1]).sum() < np.abs(m[0] - m[2]).sum()
    assert np.argmax(m[2]) == list(AGE_CENTRES).index(30)
    assert 0 < m[0].max() < 1  # soft, not hard one-hot


def test_ages_over_89_are_the_90_plus_bin():
    m = encode_metadata([300, 95, 90], [0] * 3, [NA] * 3, [NA] * 3)
    assert np.allclose(m[0], m[1]) and np.allclose(m[0], m[2])  # 1.0.3's 300 = 1.0.1's 95
    assert m[0, A - 2] == m[0, : A - 1].max() and m[0, A - 1] == 0


def test_sex_one_hot():
    m = encode_metadata([50, 50], [0, 1], [NA, NA], [NA, NA])
    assert m[0, A : A + 3].tolist() == [1, 0, 0] and m[1, A : A + 3].tolist() == [0, 1, 0]


def test_float32_tensors_encode_as_training_does():
    """Exported models encode in float32 inside their graph; training encodes in float64."""
    rng = np.random.default_rng(0)
    raw = np.stack(
        [
            rng.uniform(-5, 320, 500),
            rng.choice([0, 1, 2, NA], 500),
            rng.uniform(0, 250, 500),
            rng.uniform(0, 320, 500),
        ],
        axis=1,
    )
    raw[::3, 2] = NA
    want = encode_metadata(*raw.T)
    got = encode_metadata_tensor(torch.from_numpy(raw.astype(np.float32))).numpy()
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-5
