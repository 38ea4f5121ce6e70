"""Toy data generated in code (no downloads): 2-D densities, irregular spirals, digits, 1-D flip.

Every generator takes a ``seed`` and is reproducible; tensors come back float32 unless a
``dtype`` is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch


def eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mixture of 8 Gaussians (std 0.5) on a circle of radius 4, scaled by 1/1.414 (FFJORD).

    Returns: float64 array [n, 2].
    """
    angles = np.arange(8) * (2 * math.pi / 8)
    centers = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    idx = rng.integers(0, 8, size=n)
    return (rng.standard_normal((n, 2)) * 0.5 + centers[idx]) / 1.414


def two_moons(n: int, rng: np.random.Generator, noise: float = 0.1) -> np.ndarray:
    """Two interleaved half circles with Gaussian noise, scaled x2 and shifted (FFJORD).

    Returns: float64 array [n, 2].
    """
    upper = rng.random(n) < 0.5
    theta = rng.random(n) * math.pi
    x = np.where(upper, np.cos(theta), 1.0 - np.cos(theta))
    y = np.where(upper, np.sin(theta), 0.5 - np.sin(theta))
    points = np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))
    return points * 2.0 + np.array([-1.0, -0.2])


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform density on the dark squares of a 4x4 checkerboard on [-4, 4]^2 (FFJORD).

    Returns: float64 array [n, 2].
    """
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - rng.integers(0, 2, size=n) * 2
    x2 = x2 + np.floor(x1) % 2
    return np.stack([x1, x2], axis=1) * 2


def pinwheel(n: int, rng: np.random.Generator, n_arms: int = 5) -> np.ndarray:
    """Five curved arms: radial std 0.3, tangential std 0.1, rate 0.25, scaled x2 (FFJORD).

    Returns: float64 array [n, 2].
    """
    radial_std, tangential_std, rate = 0.3, 0.1, 0.25
    arm = rng.integers(0, n_arms, size=n)
    features = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    angles = arm * (2 * math.pi / n_arms) + rate * np.exp(features[:, 0])
    cos, sin = np.cos(angles), np.sin(angles)
    rotated = np.stack(
        [features[:, 0] * cos - features[:, 1] * sin, features[:, 0] * sin + features[:, 1] * cos],
        axis=1,
    )
    return 2 * rotated


TOY_DENSITIES: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "eight_gaussians": eight_gaussians,
    "two_moons": two_moons,
    "checkerboard": checkerboard,
    "pinwheel": pinwheel,
}


def sample_toy(name: str, n: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` samples of the named 2-D toy density (a key of ``TOY_DENSITIES``); shape [n, 2]."""
    if name not in TOY_DENSITIES:
        raise ValueError(f"unknown toy density {name!r}; choose from {sorted(TOY_DENSITIES)}")
    points = TOY_DENSITIES[name](n, np.random.default_rng(seed))
    return torch.as_tensor(points, dtype=dtype)


@dataclass
class IrregularBatch:
    """Irregularly sampled series on the union of their time grids.

    Attributes:
        times: strictly increasing union of all sample times, shape [T].
        values: observations, zero where unobserved, shape [B, T, D].
        mask: 1.0 where sample b is observed at ``times[i]``, else 0.0; shape [B, T], same dtype.
    """

    times: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor

    def select(self, time_mask: torch.Tensor) -> IrregularBatch:
        """The same series with observations kept only where ``time_mask`` ([B, T] or [T]) is 1."""
        mask = self.mask * time_mask.to(self.mask)
        return IrregularBatch(self.times, self.values * mask.unsqueeze(-1), mask)

    def to(self, device: torch.device | str) -> IrregularBatch:
        """The batch on ``device``."""
        return IrregularBatch(self.times.to(device), self.values.to(device), self.mask.to(device))


def collate_irregular(
    series: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> IrregularBatch:
    """Put series with their own time grids on the union grid.

    Args:
        series: pairs ``(t_b [n_b], x_b [n_b, D])``, each ``t_b`` strictly increasing.
    Returns:
        An IrregularBatch whose mask marks where each series was observed.
    """
    times = torch.unique(torch.cat([t for t, _ in series]), sorted=True)
    dim = series[0][1].shape[-1]
    values = torch.zeros(len(series), len(times), dim, dtype=series[0][1].dtype)
    mask = torch.zeros(len(series), len(times), dtype=series[0][1].dtype)
    for b, (t, x) in enumerate(series):
        idx = torch.searchsorted(times, t)
        values[b, idx] = x
        mask[b, idx] = 1.0
    return IrregularBatch(times, values, mask)


@dataclass
class SpiralData:
    """Noisy 2-D spirals on an irregular union grid (Chen et al. 2018 toy, irregular variant).

    Attributes:
        batch: noisy observations, each spiral keeping a random subset of the grid.
        truth: noiseless trajectories at every grid time, shape [B, T, 2].
        n_cond: the first ``n_cond`` grid times form the conditioning (interpolation) window; the
            rest is the extrapolation window.
    """

    batch: IrregularBatch
    truth: torch.Tensor
    n_cond: int

    def split(self, index: slice) -> SpiralData:
        """The spirals ``index`` (a slice over the batch dimension)."""
        b = self.batch
        return SpiralData(
            IrregularBatch(b.times, b.values[index], b.mask[index]), self.truth[index], self.n_cond
        )

    @property
    def cond_mask(self) -> torch.Tensor:
        """1.0 on the conditioning window, shape [T]."""
        m = torch.zeros_like(self.batch.times)
        m[: self.n_cond] = 1.0
        return m


def _spiral_points(s: np.ndarray, clockwise: bool, stop: float, a: float, b: float) -> np.ndarray:
    """Points of Chen et al.'s clockwise/counter-clockwise spirals at parameters ``s``; [n, 2]."""
    if clockwise:
        zeta = stop + 1.0 - s
        r = a + b * 50.0 / zeta
        return np.stack([r * np.cos(zeta) - 5.0, r * np.sin(zeta)], axis=-1)
    r = a + b * s
    return np.stack([r * np.cos(s) + 5.0, r * np.sin(s)], axis=-1)


def spirals(
    n_spirals: int,
    n_times: int = 80,
    obs_fraction: float = 0.5,
    noise_std: float = 0.3,
    window: float = 2 * math.pi * 0.6,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> SpiralData:
    """Irregularly sampled noisy spirals.

    The union grid holds ``n_times`` sorted uniform times on [0, ``window``]; the first half is the
    conditioning window, the second the extrapolation window. Each spiral is clockwise or
    counter-clockwise with prob. 1/2 (``a=0, b=0.3, stop=6*pi`` as in Chen et al.), starts at a
    random phase, and is observed at a random ``obs_fraction`` of the grid with N(0, noise_std^2)
    noise, so every spiral has its own time grid.
    """
    stop, a, b = 6 * math.pi, 0.0, 0.3
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, window, size=n_times))
    times[0] = 0.0
    truth = np.empty((n_spirals, n_times, 2))
    for i in range(n_spirals):
        s0 = rng.uniform(window, stop - window)
        truth[i] = _spiral_points(s0 + times, bool(rng.random() < 0.5), stop, a, b)
    noisy = truth + noise_std * rng.standard_normal(truth.shape)
    mask = (rng.random((n_spirals, n_times)) < obs_fraction).astype(np.float64)
    batch = IrregularBatch(
        torch.as_tensor(times, dtype=dtype),
        torch.as_tensor(noisy * mask[..., None], dtype=dtype),
        torch.as_tensor(mask, dtype=dtype),
    )
    return SpiralData(batch, torch.as_tensor(truth, dtype=dtype), n_times // 2)


@dataclass
class DigitsData:
    """scikit-learn's 8x8 digits, pixels scaled to [0, 1].

    Attributes:
        x_train, x_test: images, float32 [N, 1, 8, 8].
        y_train, y_test: labels, int64 [N].
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def digits(seed: int = 0, test_fraction: float = 0.2) -> DigitsData:
    """A stratified train/test split of ``sklearn.datasets.load_digits`` (1797 images, bundled)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.as_tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.as_tensor(data.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=test_fraction, random_state=seed, stratify=data.target
    )
    return DigitsData(x[idx_train], y[idx_train], x[idx_test], y[idx_test])


def flip_1d(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Dupont et al.'s 1-D map g(-1) = 1, g(1) = -1: inputs and targets, each [2, 1]."""
    x = torch.tensor([[-1.0], [1.0]], dtype=dtype)
    return x, -x
