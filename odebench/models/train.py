"""Small, seeded training loops for the models; each returns a TrainRecord (one results row).

Every ``train_*`` function takes ``(gradient, iters or epochs, seed, device, quick, plot_dir)``;
``quick=True`` picks a configuration that trains in seconds on two CPU cores. A record holds the
loss curve, forward/backward NFE and saved bytes per iteration, wall time, parameter count and
test metrics. Figures are written with matplotlib's Agg canvas (no pyplot state) when
``plot_dir`` is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from odebench.measure.memory import SavedTensorMeter
from odebench.measure.timing import synchronize
from odebench.models.augmented import AugmentedNODE
from odebench.models.cnf import CNF, TimeMLP
from odebench.models.data import (
    IrregularBatch,
    SpiralData,
    digits,
    flip_1d,
    sample_toy,
    spirals,
)
from odebench.models.latent_ode import GRUBaseline, LatentODE
from odebench.models.odenet import ODENet, ResNet, SolverConfig, counted, integrate, n_parameters


@dataclass
class TrainRecord:
    """What one training run measured.

    Attributes:
        model: model name ("cnf", "latent_ode", "gru", "odenet", "resnet", "node_toy", ...).
        gradient: gradient method of the ODE solves ("backprop" for models without ODEs).
        method: ODE method ("" for models without ODEs).
        seed, device: as passed.
        n_params: trainable parameters.
        losses: training loss per iteration.
        nfe_forward, nfe_backward: vector-field evaluations per iteration, summed over the
            iteration's solves, as counted by ``odebench`` (``Stats.nfe``, ``Stats.nfe_backward``).
        saved_bytes: per iteration, bytes of the distinct storages autograd saved for backward
            during the forward pass (``odebench.measure.memory.SavedTensorMeter``, saved-tensor
            hooks) plus what the gradient method kept itself (``Stats.saved_bytes``).
        wall_time_s: training wall clock (evaluation excluded).
        iter_wall_s: wall clock of each iteration (forward, backward, optimiser step), seconds.
        test_metrics: named test figures (e.g. "test_nll", "test_error", "extrap_mse").
        figures: paths of the figures written.
        config: the configuration used.
        dtype: the dtype the model's parameters trained in ("float32"), set by the training loop.
        solver: the ODE solves' settings (``SolverConfig`` fields: method, rtol, atol, gradient,
            step_size; an encoder's own solver under "encoder"); empty without an ODE.
    """

    model: str
    gradient: str
    method: str
    seed: int
    device: str
    n_params: int
    losses: list[float] = field(default_factory=list)
    nfe_forward: list[int] = field(default_factory=list)
    nfe_backward: list[int] = field(default_factory=list)
    saved_bytes: list[int] = field(default_factory=list)
    wall_time_s: float = 0.0
    iter_wall_s: list[float] = field(default_factory=list)
    test_metrics: dict[str, float] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    dtype: str = ""
    solver: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_saved_bytes(self) -> int:
        """Largest per-iteration saved bytes."""
        return max(self.saved_bytes, default=0)

    def nfe_growth(self) -> dict[str, float]:
        """Median forward/backward NFE per iteration over the first and over the last tenth of
        the iterations (``nfe_growth_window`` iterations each, at least one): whether the
        solves got costlier as the model trained (Chen et al. 2018, Fig. 3d)."""
        k = max(1, len(self.nfe_forward) // 10)
        return {
            "nfe_growth_window": k,
            "nfe_forward_first": float(np.median(self.nfe_forward[:k] or [0])),
            "nfe_forward_last": float(np.median(self.nfe_forward[-k:] or [0])),
            "nfe_backward_first": float(np.median(self.nfe_backward[:k] or [0])),
            "nfe_backward_last": float(np.median(self.nfe_backward[-k:] or [0])),
        }

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-ready) with ``peak_saved_bytes`` added."""
        return {**asdict(self), "peak_saved_bytes": self.peak_saved_bytes}


def _fit(
    record: TrainRecord,
    model: nn.Module,
    loss_fn: Callable[[int], torch.Tensor],
    iters: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> None:
    """Run ``iters`` optimisation steps, appending curves to ``record``."""
    funcs = counted(model)
    record.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    meter = SavedTensorMeter()
    cuda = next(model.parameters()).is_cuda
    start = time.perf_counter()
    model.train()
    for it in range(iters):
        begin = time.perf_counter()
        for f in funcs:
            f.solves.clear()
        with meter:
            loss = loss_fn(it)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        synchronize(cuda)
        record.iter_wall_s.append(time.perf_counter() - begin)
        solves = [s for f in funcs for s in f.solves]
        record.losses.append(float(loss.detach()))
        record.nfe_forward.append(sum(s.nfe for s in solves))
        record.nfe_backward.append(sum(s.nfe_backward for s in solves))
        record.saved_bytes.append(meter.bytes + sum(s.saved_bytes for s in solves))
    record.wall_time_s = time.perf_counter() - start
    model.eval()
    for f in funcs:
        f.solves.clear()


def _setup(seed: int, device: str) -> torch.device:
    torch.manual_seed(seed)
    return torch.device(device)


def _save(fig: Figure, plot_dir: Path, name: str, record: TrainRecord) -> None:
    plot_dir.mkdir(parents=True, exist_ok=True)
    path = plot_dir / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    record.figures.append(str(path))


# ---------------------------------------------------------------- CNF


@dataclass(frozen=True)
class CNFConfig:
    """Configuration of ``train_cnf``."""

    hidden: tuple[int, ...] = (64, 64, 64)
    iters: int = 1000
    batch_size: int = 256
    lr: float = 2e-3
    tol: float = 1e-4
    n_test: int = 5000
    grid: int = 100

    @classmethod
    def quick(cls) -> CNFConfig:
        return cls(hidden=(32, 32), iters=100, batch_size=128, lr=5e-3, tol=1e-3, n_test=1000,
                   grid=40)


def train_cnf(
    gradient: str = "backprop",
    iters: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    quick: bool = True,
    plot_dir: Path | None = None,
    density: str = "eight_gaussians",
    trace: str = "exact",
    method: str = "dopri5",
) -> TrainRecord:
    """Fit a FFJORD CNF to a 2-D toy density by maximum likelihood.

    Each iteration draws a fresh batch; the test NLL (nats, ``test_nll``) is measured on
    ``n_test`` held-out samples. Figures: data histogram, model density on a grid, model samples.
    """
    cfg = CNFConfig.quick() if quick else CNFConfig()
    iters = cfg.iters if iters is None else iters
    dev = _setup(seed, device)
    cnf = CNF(TimeMLP(2, cfg.hidden), trace=trace, method=method, rtol=cfg.tol, atol=cfg.tol,
              gradient=gradient).to(dev)
    record = TrainRecord("cnf", gradient, method, seed, device, n_parameters(cnf),
                         config={**asdict(cfg), "iters": iters, "density": density, "trace": trace},
                         solver=asdict(SolverConfig(method, cfg.tol, cfg.tol, gradient)))
    data = sample_toy(density, iters * cfg.batch_size, seed).to(dev)
    test = sample_toy(density, cfg.n_test, seed + 10_000).to(dev)

    def loss_fn(it: int) -> torch.Tensor:
        return -cnf.log_prob(data[it * cfg.batch_size : (it + 1) * cfg.batch_size]).mean()

    optimizer = torch.optim.Adam(cnf.parameters(), lr=cfg.lr)
    _fit(record, cnf, loss_fn, iters, optimizer)
    with torch.no_grad():
        record.test_metrics["test_nll"] = float(-cnf.log_prob(test).mean())
    record.test_metrics.update(record.nfe_growth())
    if plot_dir is not None:
        _plot_cnf(cnf, test, cfg.grid, Path(plot_dir), f"cnf_{density}_{gradient}.png", record)
    return record


def _plot_cnf(cnf: CNF, data: torch.Tensor, grid: int, plot_dir: Path, name: str,
              record: TrainRecord) -> None:
    lim = 4.0
    axis = torch.linspace(-lim, lim, grid, dtype=data.dtype, device=data.device)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    with torch.no_grad():
        logp = cnf.log_prob(torch.stack([xx.flatten(), yy.flatten()], dim=1))
        samples = cnf.sample(len(data), torch.Generator(device=data.device).manual_seed(0))
    fig = Figure(figsize=(9, 3))
    axes = fig.subplots(1, 3)
    bins = np.linspace(-lim, lim, 60)
    axes[0].hist2d(*data.cpu().numpy().T, bins=[bins, bins], cmap="viridis")
    axes[0].set_title("data")
    axes[1].imshow(logp.exp().view(grid, grid).cpu().numpy(), origin="lower",
                   extent=(-lim, lim, -lim, lim), cmap="viridis")
    axes[1].set_title("model density")
    axes[2].hist2d(*samples.cpu().numpy().T, bins=[bins, bins], cmap="viridis")
    axes[2].set_title("model samples")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    nll = record.test_metrics["test_nll"]
    fig.suptitle(f"CNF ({record.gradient}): test NLL {nll:.3f} nats", y=1.05)
    _save(fig, plot_dir, name, record)


# ---------------------------------------------------------------- latent ODE


@dataclass(frozen=True)
class LatentConfig:
    """Configuration of ``train_latent_ode`` and ``train_gru_baseline``."""

    n_train: int = 300
    n_test: int = 100
    n_times: int = 60
    iters: int = 600
    lr: float = 1e-2
    tol: float = 1e-4
    encoder: str = "odernn"

    @classmethod
    def quick(cls) -> LatentConfig:
        return cls(n_train=100, n_test=50, n_times=40, iters=100, tol=1e-3, encoder="gru")


def _spiral_splits(cfg: LatentConfig, seed: int) -> tuple[SpiralData, SpiralData]:
    data = spirals(cfg.n_train + cfg.n_test, n_times=cfg.n_times, seed=seed)
    return data.split(slice(0, cfg.n_train)), data.split(slice(cfg.n_train, None))


def _spiral_mse(pred: torch.Tensor, truth: torch.Tensor, where: torch.Tensor) -> float:
    """Mean squared error per coordinate over the points (b, i) where ``where`` [B, T] is 1."""
    err = (pred - truth).pow(2).sum(-1) * where
    return float(err.sum() / (where.sum() * truth.shape[-1]))


def _mean_prediction_mse(train: IrregularBatch, test: SpiralData) -> dict[str, float]:
    """The test metrics of predicting the training observations' mean everywhere: the floor a
    baseline must beat by far (``mean_interp_mse``, ``mean_extrap_mse``)."""
    weight = train.mask.unsqueeze(-1)
    mean = (train.values * weight).sum(dim=(0, 1)) / weight.sum()
    truth = test.truth.to(mean.device)
    pred = mean.expand_as(truth)
    interp, extrap = _interp_extrap_masks(test)
    return {"mean_interp_mse": _spiral_mse(pred, truth, interp.to(mean.device)),
            "mean_extrap_mse": _spiral_mse(pred, truth, extrap.to(mean.device))}


def _interp_extrap_masks(test: SpiralData) -> tuple[torch.Tensor, torch.Tensor]:
    cond = test.cond_mask.expand_as(test.batch.mask)
    return cond * (1 - test.batch.mask), 1 - cond


def train_latent_ode(
    gradient: str = "backprop",
    iters: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    quick: bool = True,
    plot_dir: Path | None = None,
    encoder: str | None = None,
    method: str = "dopri5",
) -> TrainRecord:
    """Fit a latent ODE to irregular noisy spirals (full batch, Adam).

    Training: encode the observations of the first half of the grid, maximise the ELBO of all
    observed points. Test metrics on held-out spirals, conditioned on the first-half observations,
    against the noiseless truth: ``interp_mse`` at the unobserved first-half times,
    ``extrap_mse`` at every second-half time.
    """
    cfg = LatentConfig.quick() if quick else LatentConfig()
    cfg = cfg if encoder is None else LatentConfig(**{**asdict(cfg), "encoder": encoder})
    iters = cfg.iters if iters is None else iters
    dev = _setup(seed, device)
    train, test = _spiral_splits(cfg, seed)
    solver = SolverConfig(method, cfg.tol, cfg.tol, gradient)
    model = LatentODE(encoder=cfg.encoder, solver=solver,
                      encoder_solver=SolverConfig("euler", gradient=gradient, step_size=0.25)
                      ).to(dev)
    record = TrainRecord("latent_ode", gradient, method, seed, device, n_parameters(model),
                         config={**asdict(cfg), "iters": iters},
                         solver={**asdict(solver),
                                 "encoder": asdict(model.encoder.solver) if cfg.encoder == "odernn"
                                 else None})
    batch = train.batch.to(dev)
    cond = batch.select(train.cond_mask.to(dev))

    def loss_fn(it: int) -> torch.Tensor:
        return model.elbo(batch, cond).loss

    _fit(record, model, loss_fn, iters, torch.optim.Adam(model.parameters(), lr=cfg.lr))
    test_batch = test.batch.to(dev)
    with torch.no_grad():
        pred = model.predict(test_batch.select(test.cond_mask.to(dev)), test_batch.times)
    interp, extrap = _interp_extrap_masks(test)
    truth = test.truth.to(dev)
    record.test_metrics.update({
        "interp_mse": _spiral_mse(pred, truth, interp.to(dev)),
        "extrap_mse": _spiral_mse(pred, truth, extrap.to(dev)),
        **_mean_prediction_mse(batch, test),
        **record.nfe_growth(),
    })
    if plot_dir is not None:
        _plot_spirals(test, pred, Path(plot_dir), f"latent_ode_{gradient}.png", record)
    return record


def train_gru_baseline(
    gradient: str = "backprop",
    iters: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    quick: bool = True,
    plot_dir: Path | None = None,
) -> TrainRecord:
    """The RNN baseline of ``train_latent_ode``: same data, splits, objective and metrics.

    Trained as it is tested, and as the latent ODE is trained: given the observations of the
    conditioning window (encoded, then read in order), predict every observed point of the
    series, teacher-forced inside the window and free-running after it (a GRU trained
    teacher-forced everywhere and rolled out only at test time drifted off: extrapolation MSE
    1.0). ``gradient`` is recorded only (there is no ODE).
    """
    cfg = LatentConfig.quick() if quick else LatentConfig()
    iters = cfg.iters if iters is None else iters
    dev = _setup(seed, device)
    train, test = _spiral_splits(cfg, seed)
    model = GRUBaseline().to(dev)
    batch = train.batch.to(dev)
    model.fit_scale(batch)
    record = TrainRecord("gru", gradient, "", seed, device, n_parameters(model),
                         config={**asdict(cfg), "iters": iters})
    cond = batch.select(train.cond_mask.to(dev))

    def loss_fn(it: int) -> torch.Tensor:
        err = (model(cond, rollout_from=train.n_cond) - batch.values).pow(2).sum(-1) * batch.mask
        return err.sum() / batch.mask.sum()

    _fit(record, model, loss_fn, iters, torch.optim.Adam(model.parameters(), lr=cfg.lr))
    test_batch = test.batch.to(dev)
    with torch.no_grad():
        pred = model(test_batch.select(test.cond_mask.to(dev)), rollout_from=test.n_cond)
    interp, extrap = _interp_extrap_masks(test)
    truth = test.truth.to(dev)
    record.test_metrics.update({
        "interp_mse": _spiral_mse(pred, truth, interp.to(dev)),
        "extrap_mse": _spiral_mse(pred, truth, extrap.to(dev)),
        **_mean_prediction_mse(batch, test),
    })
    if plot_dir is not None:
        _plot_spirals(test, pred, Path(plot_dir), "gru_baseline.png", record)
    return record


def _plot_spirals(test: SpiralData, pred: torch.Tensor, plot_dir: Path, name: str,
                  record: TrainRecord, n: int = 4) -> None:
    fig = Figure(figsize=(3 * n, 3))
    axes = fig.subplots(1, n)
    b, k = test.batch, test.n_cond
    for i, ax in enumerate(axes):
        truth, p, obs = test.truth[i].cpu(), pred[i].cpu(), b.mask[i].cpu() > 0
        ax.plot(truth[:, 0], truth[:, 1], color="0.7", lw=1, label="truth")
        ax.plot(p[:k, 0], p[:k, 1], color="tab:blue", lw=1.5, label="interpolation")
        ax.plot(p[k - 1 :, 0], p[k - 1 :, 1], color="tab:red", lw=1.5, label="extrapolation")
        cond = obs.clone()
        cond[k:] = False
        ax.scatter(b.values[i, cond, 0].cpu(), b.values[i, cond, 1].cpu(), s=8, c="k",
                   label="conditioning obs.")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=7, loc="best")
    m = record.test_metrics
    fig.suptitle(f"{record.model} ({record.gradient}): interp MSE {m['interp_mse']:.3f}, "
                 f"extrap MSE {m['extrap_mse']:.3f}")
    _save(fig, plot_dir, name, record)


# ---------------------------------------------------------------- ODE-Net on digits


@dataclass(frozen=True)
class DigitsConfig:
    """Configuration of ``train_odenet`` and ``train_resnet``."""

    channels: int = 32
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    tol: float = 1e-3
    resnet_blocks: int = 4

    @classmethod
    def quick(cls) -> DigitsConfig:
        return cls(channels=16, epochs=1, batch_size=64, lr=5e-3, tol=1e-2)


def _classification(
    record: TrainRecord, model: nn.Module, cfg: DigitsConfig, epochs: int, seed: int,
    dev: torch.device,
) -> None:
    data = digits(seed)
    x_train, y_train = data.x_train.to(dev), data.y_train.to(dev)
    n_batches = -(-len(y_train) // cfg.batch_size)
    gen = torch.Generator().manual_seed(seed)
    orders = [torch.randperm(len(y_train), generator=gen).to(dev) for _ in range(epochs)]

    def loss_fn(it: int) -> torch.Tensor:
        epoch, i = divmod(it, n_batches)
        idx = orders[epoch][i * cfg.batch_size : (i + 1) * cfg.batch_size]
        return nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])

    iters = epochs * n_batches
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iters)
    _fit(record, model, loss_fn, iters, optimizer, scheduler)
    with torch.no_grad():
        logits = model(data.x_test.to(dev))
    wrong = logits.argmax(1) != data.y_test.to(dev)
    record.test_metrics["test_error"] = float(wrong.float().mean())
    if counted(model):
        record.test_metrics.update(record.nfe_growth())
    record.config["iters_per_epoch"] = n_batches


def fit_odenet(
    gradient: str = "backprop",
    epochs: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    quick: bool = True,
    dynamics: str = "conv",
    augment: int = 0,
    method: str = "dopri5",
) -> tuple[ODENet, TrainRecord]:
    """Train an ODE-Net classifier on the 8x8 digits (Adam, cosine schedule): the trained
    model (in eval mode) and its record (``test_error`` at the training tolerance)."""
    cfg = DigitsConfig.quick() if quick else DigitsConfig()
    epochs = cfg.epochs if epochs is None else epochs
    dev = _setup(seed, device)
    solver = SolverConfig(method, cfg.tol, cfg.tol, gradient)
    model = ODENet(cfg.channels, dynamics, augment, solver).to(dev)
    name = "odenet" if augment == 0 else "anode_net"
    record = TrainRecord(name, gradient, method, seed, device, n_parameters(model),
                         config={**asdict(cfg), "epochs": epochs, "dynamics": dynamics,
                                 "augment": augment}, solver=asdict(solver))
    _classification(record, model, cfg, epochs, seed, dev)
    return model, record


def train_odenet(
    gradient: str = "backprop",
    epochs: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    quick: bool = True,
    plot_dir: Path | None = None,
    dynamics: str = "conv",
    augment: int = 0,
    method: str = "dopri5",
) -> TrainRecord:
    """Train an ODE-Net classifier on the 8x8 digits (:func:`fit_odenet`); ``test_error``.

    Figure: forward and backward NFE per iteration over training.
    """
    _, record = fit_odenet(gradient, epochs, seed, device, quick, dynamics, augment, method)
    name = record.model
    if plot_dir is not None:
        fig = Figure(figsize=(5, 3))
        ax = fig.subplots()
        ax.plot(record.nfe_forward, label="forward")
        ax.plot(record.nfe_backward, label="backward")
        ax.set_xlabel("iteration")
        ax.set_ylabel("NFE")
        ax.legend()
        ax.set_title(f"{name} ({gradient}): test error {record.test_metrics['test_error']:.2%}")
        suffix = f"_seed{seed}" if seed else ""
        _save(fig, Path(plot_dir), f"{name}_{dynamics}_{gradient}{suffix}_nfe.png", record)
    return record


def train_resnet(
    gradient: str = "backprop",
    epochs: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    quick: bool = True,
    plot_dir: Path | None = None,
) -> TrainRecord:
    """The ResNet twin of ``train_odenet`` (same stem, head, data and schedule); ``test_error``.

    ``gradient`` is recorded only; ``plot_dir`` is unused (no ODE, no NFE to plot).
    """
    cfg = DigitsConfig.quick() if quick else DigitsConfig()
    epochs = cfg.epochs if epochs is None else epochs
    dev = _setup(seed, device)
    model = ResNet(cfg.channels, cfg.resnet_blocks).to(dev)
    record = TrainRecord("resnet", gradient, "", seed, device, n_parameters(model),
                         config={**asdict(cfg), "epochs": epochs})
    _classification(record, model, cfg, epochs, seed, dev)
    return record


def classifier_step(record: TrainRecord, model: nn.Module, x: torch.Tensor,
                    y: torch.Tensor) -> None:
    """One training iteration of the classifier ``model`` on the batch ``x`` [B, 1, 8, 8],
    ``y`` [B] (cross-entropy, plain SGD with learning rate 0: the weights stay as they are),
    measured into ``record`` as every training iteration is: NFE forward and backward, bytes
    saved for backward (autograd's saved storages plus what the gradient method kept), wall."""
    _fit(record, model, lambda it: nn.functional.cross_entropy(model(x), y), 1,
         torch.optim.SGD(model.parameters(), lr=0.0))


# ---------------------------------------------------------------- augmented 1-D toy


@dataclass(frozen=True)
class ToyConfig:
    """Configuration of ``train_augmented_toy``."""

    iters: int = 500
    tol: float = 1e-5
    lr: float = 1e-2
    hidden: int = 32

    @classmethod
    def quick(cls) -> ToyConfig:
        return cls(iters=150, tol=1e-3)


def train_augmented_toy(
    gradient: str = "backprop",
    iters: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    quick: bool = True,
    plot_dir: Path | None = None,
    augment: int = 1,
    method: str = "dopri5",
) -> TrainRecord:
    """Fit g(-1) = 1, g(1) = -1 with a neural ODE whose output is z(1)'s first coordinate.

    ``augment=0`` is the plain neural ODE: a 1-D flow preserves order, so its MSE stays above 1;
    ``augment>=1`` can fit. Test metric ``final_mse`` is the MSE of the trained model.
    Figure: the trajectories of the two inputs.
    """
    cfg = ToyConfig.quick() if quick else ToyConfig()
    iters = cfg.iters if iters is None else iters
    dev = _setup(seed, device)
    solver = SolverConfig(method, cfg.tol, cfg.tol, gradient)
    model = AugmentedNODE(1, augment, hidden=cfg.hidden, solver=solver).to(dev)
    name = "node_toy" if augment == 0 else "anode_toy"
    record = TrainRecord(name, gradient, method, seed, device, n_parameters(model),
                         config={**asdict(cfg), "iters": iters, "augment": augment},
                         solver=asdict(solver))
    x, y = (v.to(dev) for v in flip_1d())

    def loss_fn(it: int) -> torch.Tensor:
        return (model(x) - y).pow(2).mean()

    _fit(record, model, loss_fn, iters, torch.optim.Adam(model.parameters(), lr=cfg.lr))
    with torch.no_grad():
        record.test_metrics["final_mse"] = float((model(x) - y).pow(2).mean())
    record.test_metrics.update(record.nfe_growth())
    if plot_dir is not None:
        _plot_toy(model, x, Path(plot_dir), f"{name}_{gradient}.png", record)
    return record


def _plot_toy(model: AugmentedNODE, x: torch.Tensor, plot_dir: Path, name: str,
              record: TrainRecord) -> None:
    ts = torch.linspace(0, model.block.T, 50, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        zs = integrate(model.block.func, model.augment(x), ts, model.block.solver)
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    for i, color in enumerate(("tab:blue", "tab:red")):
        ax.plot(ts.cpu(), zs[:, i, 0].cpu(), color=color, label=f"x = {float(x[i, 0]):+g}")
    ax.set_xlabel("t")
    ax.set_ylabel("z_1(t)")
    ax.legend()
    ax.set_title(f"{record.model}: final MSE {record.test_metrics['final_mse']:.3f}")
    _save(fig, plot_dir, name, record)


#: Each trainer -> its configuration class (``quick()`` or the defaults); the ``tol`` of an ODE
#: model's configuration is the rtol and the atol of its solves.
CONFIGS: dict[Callable[..., TrainRecord], type] = {
    train_cnf: CNFConfig, train_latent_ode: LatentConfig, train_gru_baseline: LatentConfig,
    train_odenet: DigitsConfig, train_resnet: DigitsConfig, train_augmented_toy: ToyConfig,
}


def solver_tolerance(trainer: Callable[..., TrainRecord], quick: bool) -> float:
    """The rtol (= atol) ``trainer``'s ODE solves use in its quick or full configuration."""
    config = CONFIGS[trainer]
    return (config.quick() if quick else config()).tol
