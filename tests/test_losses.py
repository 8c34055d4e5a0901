import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from llmrec_lite.losses import PAD_BANDWIDTHS, linear_mmd, mk_mmd, single_kernel_mmd


def reference_mk_mmd(x: np.ndarray, y: np.ndarray, bandwidths) -> float:
    """The unbiased MK-MMD^2 written out with SciPy, loop by loop."""
    z = np.vstack([x, y])
    d2 = cdist(z, z, "sqeuclidean")
    n_z = len(z)
    scale = d2[~np.eye(n_z, dtype=bool)].mean()
    k = np.mean([np.exp(-d2 / (2 * b * scale)) for b in bandwidths], axis=0)
    n, m = len(x), len(y)
    xx = sum(k[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k[n + i, n + j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k[i, n + j] for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def sample(n, shift=0.0, scale=1.0, seed=0, d=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift


def test_mk_mmd_matches_a_scipy_reference():
    x, y = sample(12, seed=1), sample(9, shift=0.7, seed=2)
    for bw in (PAD_BANDWIDTHS, (1.0,), (0.5, 4.0)):
        assert mk_mmd(x, y, bw).item() == pytest.approx(reference_mk_mmd(x.numpy(), y.numpy(), bw), rel=1e-9)


def test_mk_mmd_is_near_zero_for_one_distribution_and_grows_with_a_mean_shift():
    same = mk_mmd(sample(400, seed=1), sample(400, seed=2)).item()
    values = [mk_mmd(sample(400, seed=1), sample(400, shift=s, seed=2)).item() for s in (0.25, 0.5, 1.0)]
    assert abs(same) < 2e-3
    assert same < values[0] < values[1] < values[2]


def test_mk_mmd_is_symmetric_and_differentiable():
    x, y = sample(20, seed=3).requires_grad_(), sample(15, shift=0.5, seed=4)
    v = mk_mmd(x, y)
    assert v.item() == pytest.approx(mk_mmd(y, x).item(), rel=1e-12)
    v.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_only_a_characteristic_kernel_sees_a_change_of_spread():
    x, y = sample(500, seed=5), sample(500, scale=2.0, seed=6)  # equal means, different variances
    assert abs(linear_mmd(x, y).item()) < 0.05
    assert mk_mmd(x, y).item() > 20 * abs(mk_mmd(x, sample(500, seed=7)).item())
    assert single_kernel_mmd(x, y).item() > 0


def test_linear_mmd_is_the_unbiased_mean_distance():
    x, y = sample(7, seed=8), sample(5, shift=0.3, seed=9)
    ref = reference_linear(x.numpy(), y.numpy())
    assert linear_mmd(x, y).item() == pytest.approx(ref, rel=1e-9)


def reference_linear(x, y):
    n, m = len(x), len(y)
    k = lambda a, b: a @ b
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    return xx + yy - 2 * sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)


def test_mk_mmd_names_bad_input():
    with pytest.raises(ValueError, match="same width"):
        mk_mmd(sample(5, d=3), sample(5, d=4))
    with pytest.raises(ValueError, match="two rows"):
        mk_mmd(sample(1), sample(5))
