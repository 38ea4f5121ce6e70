"""The Neural ODE paper's claims, and a follow-up's, each judged by code from the results rows.

Chen, Rubanova, Bettencourt & Duvenaud, "Neural Ordinary Differential Equations", NeurIPS 2018
(arXiv:1806.07366), its public discussion, and Kidger, Chen & Lyons's seminorm paper (ICML
2021; claim g) make claims that odebench's studies measure.
``evaluate_claims(rows)`` returns one ``Claim`` per claim: its parts, each with a verdict
(``VERDICTS``) and the numbers behind it, all computed from ``rows`` (a DataFrame of results
rows as ``ResultsStore.rows()`` returns it). Nothing here is a measured number: the only
constants are the paper's own figures (quoted in the claims' text, with their source) and the
thresholds that turn numbers into verdicts, each declared below with its reason. A claim
whose rows are absent is "not measured", with the reason.

``to_markdown(claims)`` is ``reports/tables/claims.md``; ``odebench.report.html`` renders the
same claims at the top of the page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from odebench.reference.settings import IMPLICIT_METHODS
from odebench.report import seminorm
from odebench.report.tables import as_dict
from odebench.results import COLUMNS

__all__ = [
    "CLAIMS",
    "CONFIRMED",
    "NOT_MEASURED",
    "PARTLY",
    "REFUTED",
    "VERDICTS",
    "Claim",
    "Link",
    "Part",
    "Spread",
    "evaluate_claims",
    "to_markdown",
    "write_claims",
]

CONFIRMED, REFUTED, PARTLY, NOT_MEASURED = "confirmed", "refuted", "partly", "not measured"
#: The verdicts a claim or a part of one can take.
VERDICTS: tuple[str, ...] = (CONFIRMED, REFUTED, PARTLY, NOT_MEASURED)

#: (a) "about 1/3 of the parameters": any ratio up to one half counts as "far fewer".
PARAM_RATIO_MAX = 0.5
#: (a), (c) O(1) memory: saved bytes may vary by this factor over the grid and still be flat.
FLAT_MEMORY_FACTOR = 1.1
#: (b) "about half the forward NFE": a median backward/forward ratio within a factor 1.5 of 0.5.
HALF_BAND = (0.5 / 1.5, 0.5 * 1.5)
#: (c) "high memory cost": backprop saves at least this many times the adjoint's bytes.
MEMORY_COST_FACTOR = 2.0
#: (c) "extra numerical error": backprop less accurate in at least this share of the
#: configurations confirms, in at most ``1 - MAJORITY`` refutes, in between is "partly".
MAJORITY = 0.75
#: (d) the gradient error above which a gradient counts as drifted (the issue's 1e-3).
DRIFT_THRESHOLD = 1e-3
#: (e) "NFE grows during training": the median forward NFE per iteration over the last
#: ``nfe_growth_window`` iterations of a run, over that of its first ones, above this.
NFE_GROWTH_FACTOR = 1.1
#: (e) "a small cost in accuracy" at test time: the test error (a fraction) at a looser
#: tolerance may differ from the tightest tolerance's by at most this (one percentage point).
TEST_ERROR_CHANGE_MAX = 0.01
#: (f) "need implicit methods": an explicit method costs at least this many times the NFE.
STIFF_COST_FACTOR = 10.0

#: (g) the seminorm paper's figures (Kidger, Chen & Lyons 2021, abstract): a median 40%, up to
#: 62%, fewer backward function evaluations.
PAPER_SEMINORM_SAVING, PAPER_SEMINORM_MAX = 0.40, 0.62
#: (g) confirmed from half the paper's median saving; refuted up to 5%, less than one dopri5
#: step in twenty (the savings come in whole steps of 6 evaluations).
SEMINORM_SAVING_CONFIRM, SEMINORM_SAVING_REFUTE = 0.20, 0.05
#: (g) the norm the paper's baseline used: torchdiffeq's default adjoint norm, the max of the
#: per-tensor RMS norms (odebench's ``adjoint_norm="per_part"``).
SEMINORM_BASELINE = "per_part"

#: The adjoint method of the paper (Chen et al. 2018, Alg. 1): backward integration of the state.
ADJOINT = "backsolve"
#: The models study's rows of the claims (``odebench.studies.models``): the trained ODE-Net
#: evaluated at test-time tolerances, and one training step's saved bytes of the ResNet per
#: depth and of the ODE-Net per gradient method and tolerance. None is a training run.
TEST_TOLERANCE_MODEL = "odenet_test_tol"
RESNET_MEMORY_MODEL, ODENET_MEMORY_MODEL = "resnet_memory", "odenet_memory"
#: The implicit method the stiff claim compares with.
IMPLICIT_REFERENCE = "rodas5p"
#: odebench's implicit methods; with SciPy's (``IMPLICIT_METHODS``) the methods not "explicit".
ODEBENCH_IMPLICIT = ("rodas5p", "rodas4")

#: Columns that, with the gradient, define one configuration of a run.
CONFIG_COLUMNS = (
    "study", "problem", "backend", "method", "rtol", "atol", "dtype", "device",
    "T", "width", "batch", "state_dim", "seminorm",
)


@dataclass(frozen=True)
class Link:
    """A table or figure of the report backing a claim: ``kind`` "table" or "figure", and its
    file stem (``TableSpec.name`` / the figure's name). The page links ``#<kind>-<name>``."""

    kind: str
    name: str

    @property
    def anchor(self) -> str:
        return f"{self.kind}-{self.name}"


@dataclass(frozen=True)
class Part:
    """One measurable part of a claim: a verdict and the numbers behind it (text)."""

    name: str
    verdict: str
    evidence: str


@dataclass(frozen=True)
class Claim:
    """A claim, where it is made, its parts and the report items behind them."""

    key: str
    statement: str
    source: str
    parts: tuple[Part, ...]
    links: tuple[Link, ...]
    data: str = ""  # what our data is, where it differs from the paper's

    @property
    def verdict(self) -> str:
        """Confirmed / refuted when every part says so, not measured when no part is
        measured, else partly (the parts disagree, or some are not measured)."""
        verdicts = {p.verdict for p in self.parts}
        return verdicts.pop() if len(verdicts) == 1 else \
            NOT_MEASURED if verdicts == {NOT_MEASURED} else PARTLY


@dataclass(frozen=True)
class Spread:
    """Median, quartiles, extremes and count of a set of numbers."""

    median: float
    q1: float
    q3: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread | None:
        """The spread of the finite ``values``; ``None`` when there is none."""
        data = np.asarray([float(v) for v in values if _finite(v)], dtype=np.float64)
        if data.size == 0:
            return None
        q1, median, q3 = np.quantile(data, [0.25, 0.5, 0.75])
        return cls(float(median), float(q1), float(q3), float(data.min()), float(data.max()),
                   int(data.size))

    def text(self, fmt: Callable[[float], str] = lambda v: f"{v:.3g}") -> str:
        """``median m (IQR q1-q3, range lo-hi, N n)``, compact when N is 1."""
        if self.n == 1:
            return f"{fmt(self.median)} (N 1)"
        return (f"median {fmt(self.median)} (IQR {fmt(self.q1)}-{fmt(self.q3)}, "
                f"range {fmt(self.low)}-{fmt(self.high)}, N {self.n})")


# --------------------------------------------------------------------------- row helpers


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and \
        math.isfinite(float(value))


def _study(rows: pd.DataFrame, *studies: str) -> pd.DataFrame:
    if rows.empty or "study" not in rows.columns:
        return rows.iloc[0:0]
    return rows[rows["study"].isin(studies)]


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["status"] == "ok"] if "status" in rows.columns else rows


def _column(rows: pd.DataFrame, name: str) -> pd.Series:
    """The numeric column ``name`` (NaN where missing or absent)."""
    if name not in rows.columns:
        return pd.Series(np.nan, index=rows.index, dtype=float)
    return pd.to_numeric(rows[name], errors="coerce")


def _extra(rows: pd.DataFrame, key: str) -> pd.Series:
    """``extra[key]`` of each row (None where absent)."""
    values = rows["extra"] if "extra" in rows.columns else [None] * len(rows)
    return pd.Series([as_dict(v).get(key) for v in values], index=rows.index, dtype=object)


def _param(rows: pd.DataFrame, key: str, default: Any = None) -> pd.Series:
    """``params[key]`` of each row (``default`` where absent)."""
    params = rows["params"] if "params" in rows.columns else [None] * len(rows)
    return pd.Series([as_dict(v).get(key, default) for v in params], index=rows.index,
                     dtype=object)


def _seed(rows: pd.DataFrame) -> pd.Series:
    return _param(rows, "seed", 0)


def _key(value: Any) -> Any:
    """A hashable stand-in for grouping: missing values are None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _configs(rows: pd.DataFrame) -> dict[tuple[Any, ...], dict[str, pd.Series]]:
    """Rows by configuration (``CONFIG_COLUMNS``), then by gradient: the latest row each."""
    columns = [c for c in CONFIG_COLUMNS if c in rows.columns]
    ordered = rows.sort_values("timestamp", kind="stable") if "timestamp" in rows.columns \
        else rows
    grouped: dict[tuple[Any, ...], dict[str, pd.Series]] = {}
    for _, row in ordered.iterrows():
        config = tuple(_key(row[c]) for c in columns)
        grouped.setdefault(config, {})[str(row["gradient"])] = row
    return grouped


def _span(values: pd.Series, fmt: Callable[[float], str]) -> str:
    """``lo-hi`` of ``values``, or one value when they are all equal."""
    low, high = fmt(values.min()), fmt(values.max())
    return low if low == high else f"{low}-{high}"


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _mb(value: float) -> str:
    return f"{value / 1e6:.3g} MB"


def _x(value: float) -> str:
    return f"{value:.2f}x"


def _g(value: float) -> str:
    return f"{value:.3g}"


# --------------------------------------------------------------------------- (a)


def _model_runs(rows: pd.DataFrame, model: str) -> pd.DataFrame:
    """The ok runs of ``model`` with their test error, seed and parameter count."""
    runs = _ok(_study(rows, "models"))
    runs = runs[runs["model"] == model] if "model" in runs.columns else runs.iloc[0:0]
    return runs.assign(
        test_error=pd.to_numeric(_extra(runs, "test_error"), errors="coerce"),
        n_params=pd.to_numeric(_extra(runs, "n_params"), errors="coerce"),
        seed=_seed(runs),
    ).dropna(subset=["test_error"])


def _most_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the gradient method with the most seeds (first in row order on ties),
    the latest row per seed."""
    counts = runs.groupby("gradient", sort=False)["seed"].nunique()
    chosen = runs[runs["gradient"] == counts.idxmax()]
    if "timestamp" in chosen.columns:
        chosen = chosen.sort_values("timestamp", kind="stable")
    return chosen.drop_duplicates("seed", keep="last")


def _test_images(rows: pd.DataFrame) -> tuple[int, str]:
    """The size of the digits test set and where it comes from: ``extra["n_test"]`` where the
    rows record it, else that of the split the models study trains on
    (``odebench.models.data.digits``); 0 when neither is known."""
    values = pd.to_numeric(_extra(_study(rows, "models"), "n_test"), errors="coerce").dropna()
    if len(values):
        return int(values.iloc[0]), "recorded in the rows"
    try:
        from odebench.models.data import digits

        return len(digits().y_test), "the split of odebench.models.data.digits"
    except ImportError:  # scikit-learn (the models extra) is not installed
        return 0, ""


def claim_accuracy(rows: pd.DataFrame) -> Claim:
    """(a) ODE-Net matches ResNet's test error with fewer parameters and O(1) memory."""
    ode, res = _model_runs(rows, "odenet"), _model_runs(rows, "resnet")
    parts = []
    n_test, n_source = _test_images(rows) if not (ode.empty and res.empty) else (0, "")
    if ode.empty or res.empty:
        missing = "ODE-Net" if ode.empty else "ResNet"
        parts += [Part("test error", NOT_MEASURED, f"no {missing} run with a test error"),
                  Part("parameters", NOT_MEASURED, f"no {missing} run")]
    else:
        ode, res = _most_seeds(ode), _most_seeds(res)
        e_ode, e_res = Spread.of(ode["test_error"]), Spread.of(res["test_error"])
        assert e_ode is not None and e_res is not None
        # one misclassified image, when the rows say how many there are; else the seed range
        image = 1.0 / n_test if n_test else 0.0
        tolerance = max(e_res.high - e_res.low, image)
        gap = e_ode.median - e_res.median
        verdict = CONFIRMED if gap <= tolerance else REFUTED
        parts.append(Part(
            "test error", verdict,
            f"ODE-Net ({ode['gradient'].iloc[0]}, seeds {sorted(ode['seed'].tolist())}) "
            f"{e_ode.text(_pct)}; ResNet {e_res.text(_pct)}; gap of the medians {_pct(gap)} "
            f"{'within' if verdict == CONFIRMED else 'beyond'} the tolerance {_pct(tolerance)} "
            "(ResNet's seed range, at least one test image)"))
        p_ode, p_res = ode["n_params"].median(), res["n_params"].median()
        if _finite(p_ode) and _finite(p_res) and p_res > 0:
            ratio = p_ode / p_res
            parts.append(Part(
                "parameters", CONFIRMED if ratio <= PARAM_RATIO_MAX else REFUTED,
                f"{int(p_ode):,} vs {int(p_res):,} parameters: {_x(ratio)} "
                f"(claim: at most {PARAM_RATIO_MAX:g}x counts as far fewer)"))
        else:
            parts.append(Part("parameters", NOT_MEASURED, "no parameter count in the rows"))
    parts.append(_flat_adjoint_memory(rows))
    data = "scikit-learn digits (8x8 images)"
    data += f", {n_test} test images ({n_source})" if n_test else ""
    data += "; the paper: MNIST, 10,000 test images"
    return Claim(
        key="a",
        statement="ODE-Net matches ResNet's test error with about 1/3 of the parameters and "
                  "O(1) memory (paper: 0.42% vs 0.41% test error on MNIST, 0.22M vs 0.60M "
                  "parameters).",
        source="Chen et al. 2018, Table 1",
        parts=tuple(parts),
        links=(Link("table", "models_classifier"), Link("table", "models"),
               Link("figure", "memory_scaling"), Link("table", "memory")),
        data=data,
    )


def _flat_adjoint_memory(rows: pd.DataFrame) -> Part:
    """O(1) memory, from two sources: one training step of the models study (the ResNet's saved
    bytes grow with its depth, the ODE-Net's with the adjoint stay flat in its forward NFE;
    backprop's and the other methods' shown beside) and the memory_scaling study (the adjoint's
    saved bytes flat over T). Each ResNet line and each adjoint line is one check: all pass
    confirms, none refutes; not measured without an adjoint line."""
    texts, checks = _memory_per_depth(rows)
    scaling_texts, scaling_checks = _memory_over_t(rows)
    adjoint_checks = [flat for name, flat in checks if name == ADJOINT] + scaling_checks
    if not adjoint_checks:
        return Part("O(1) memory", NOT_MEASURED, "; ".join(
            [*texts, f"no odenet_memory rows of {ADJOINT} at two or more NFE, no "
             f"memory_scaling rows of {ADJOINT} at two or more T"]))
    verdicts = [passed for _, passed in checks] + scaling_checks
    verdict = CONFIRMED if all(verdicts) else REFUTED if not any(verdicts) else PARTLY
    return Part("O(1) memory", verdict, "; ".join(texts + scaling_texts) +
                f" (flat: max/min at most {FLAT_MEMORY_FACTOR:g}; grows: above it)")


def _by_setting(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The models study's memory rows ``rows`` per setting (mode, device, dtype, batch): its
    description and its latest row per (model, gradient, rtol, depth)."""
    ordered = rows.sort_values("timestamp", kind="stable")
    out = []
    for (mode, device, dtype, batch), group in ordered.groupby(
            ["mode", "device", "dtype", "batch"], sort=True, dropna=False):
        size = f"batch {batch:g}" if _finite(batch) else "batch not recorded"
        out.append((f"{mode}, {device}, {dtype}, {size}",
                    group.drop_duplicates(["model", "gradient", "rtol", "depth"], keep="last")))
    return out


def _growth(saved: pd.Series) -> tuple[bool, str]:
    """Whether ``saved`` (bytes) stays flat (max/min at most ``FLAT_MEMORY_FACTOR``), and
    ``flat, 1.00x`` / ``grows 2.07x``."""
    factor = saved.max() / saved.min()
    flat = factor <= FLAT_MEMORY_FACTOR
    return flat, f"{'flat' if flat else 'grows'} {_x(factor)}"


def _series(points: pd.DataFrame, at: str, label: str) -> str:
    """``label 1, 2, 4: 0.677, 0.78, 0.988 MB`` of ``points`` sorted by the column ``at``."""
    points = points.sort_values(at)
    return (f"{label} {', '.join(f'{v:g}' for v in points[at])}: "
            f"{', '.join(f'{v / 1e6:.3g}' for v in points['saved'])} MB")


def _memory_per_depth(rows: pd.DataFrame) -> tuple[list[str], list[tuple[str, bool]]]:
    """The models study's one-step memory rows: per setting, the ResNet's saved bytes against
    its depth (``params["n_blocks"]``) and the ODE-Net's per gradient method against its
    forward NFE. Returns the texts and the checks ``("resnet", grows)`` / ``(ADJOINT, flat)``."""
    data = _ok(_study(rows, "models"))
    data = data[data["model"].isin((RESNET_MEMORY_MODEL, ODENET_MEMORY_MODEL))] \
        if "model" in data.columns else data.iloc[0:0]
    data = data.assign(saved=_column(data, "saved_bytes"), nfe=_column(data, "nfe_forward"),
                       depth=pd.to_numeric(_param(data, "n_blocks"), errors="coerce"))
    data = data[data["saved"] > 0]
    texts, checks = [], []
    for setting, group in _by_setting(data):
        resnet = group[(group["model"] == RESNET_MEMORY_MODEL) & group["depth"].notna()]
        odenet = group[(group["model"] == ODENET_MEMORY_MODEL) & group["nfe"].notna()]
        lines = []
        if resnet["depth"].nunique() >= 2:
            flat, how = _growth(resnet["saved"])
            checks.append(("resnet", not flat))
            lines.append(f"ResNet {_series(resnet, 'depth', 'depth')} ({how})")
        gradients = sorted(set(odenet["gradient"].dropna()),
                           key=lambda g: (g != ADJOINT, g != "backprop", g))
        for gradient in gradients:
            line = odenet[odenet["gradient"] == gradient]
            if line["nfe"].nunique() < 2:
                continue
            flat, how = _growth(line["saved"])
            if gradient == ADJOINT:
                checks.append((ADJOINT, flat))
            lines.append(f"ODE-Net {gradient} {_series(line, 'nfe', 'at NFE')} ({how})")
        if lines:
            texts.append(f"one training step ({setting}): " + ", ".join(lines))
    return texts, checks


def _memory_over_t(rows: pd.DataFrame) -> tuple[list[str], list[bool]]:
    """memory_scaling: per backend, whether the adjoint's saved bytes stay flat over T (with
    backprop's beside), on the setting with the most T values."""
    data = _ok(_study(rows, "memory_scaling"))
    data = data.assign(saved=_column(data, "saved_bytes"), T=_column(data, "T")).dropna(
        subset=["saved", "T"])
    texts, verdicts = [], []
    for backend, group in data.groupby("backend", sort=True):
        others = [c for c in ("width", "batch", "state_dim", "problem", "method", "rtol")
                  if c in group.columns]
        # the setting with the most T values: one line of memory against T
        settings = pd.Series([repr(tuple(_key(v) for v in values))
                              for values in group[others].itertuples(index=False)],
                             index=group.index)
        sizes = group.groupby(settings, sort=False)["T"].nunique()
        if sizes.empty or sizes.max() < 2:
            continue
        line = group[settings == sizes.idxmax()]
        adjoint = line[line["gradient"] == ADJOINT]
        backprop = line[line["gradient"] == "backprop"]
        if adjoint["T"].nunique() < 2:
            continue
        flat, _ = _growth(adjoint["saved"])
        verdicts.append(flat)
        t_lo, t_hi = adjoint["T"].min(), adjoint["T"].max()
        text = (f"memory_scaling: {backend} {ADJOINT} saves {_span(adjoint['saved'], _mb)} "
                f"for T {t_lo:g}-{t_hi:g}")
        if backprop["T"].nunique() >= 2:
            text += f" (backprop {_span(backprop['saved'], _mb)})"
        texts.append(text)
    return texts, verdicts


# --------------------------------------------------------------------------- (b)


def _nfe_ratios(rows: pd.DataFrame) -> dict[tuple[str, str, str], Spread]:
    """Backward / forward NFE per (source, backend, gradient): source "training" (models rows,
    the mean over training where recorded) or "benchmarks" (every other study's gradient
    runs). The models study's one-step memory rows are neither: they are left out."""
    data = _ok(rows)
    if data.empty or "gradient" not in data.columns:
        return {}
    one_step = (data["study"] == "models") & data["model"].isin(
        (RESNET_MEMORY_MODEL, ODENET_MEMORY_MODEL))
    data = data[data["gradient"].notna() & ~one_step]
    fwd, bwd = _column(data, "nfe_forward"), _column(data, "nfe_backward")
    ratio = (bwd / fwd.where(fwd > 0)).astype(float)
    training = data["study"] == "models"
    recorded = pd.to_numeric(_extra(data, "nfe_backward_over_forward"), errors="coerce")
    ratio = ratio.where(~(training & recorded.notna()), recorded)
    data = data.assign(ratio=ratio, source=np.where(training, "training", "benchmarks"))
    out = {}
    for (source, backend, gradient), group in data.groupby(["source", "backend", "gradient"]):
        spread = Spread.of(group["ratio"])
        if spread is not None:
            out[(str(source), str(backend), str(gradient))] = spread
    return out


def claim_backward_nfe(rows: pd.DataFrame) -> Claim:
    """(b) The adjoint's backward pass needs about half the forward NFE."""
    ratios = _nfe_ratios(rows)
    parts = []
    low, high = HALF_BAND
    for source in ("training", "benchmarks"):
        spread = ratios.get((source, "odebench", ADJOINT))
        if spread is None:
            parts.append(Part(source, NOT_MEASURED, f"no {source} rows of odebench {ADJOINT}"))
            continue
        inside = low <= spread.median <= high
        others = "; ".join(f"{b} {g} {s.median:.2f} (N {s.n})"
                           for (src, b, g), s in sorted(ratios.items())
                           if src == source and (b, g) != ("odebench", ADJOINT))
        parts.append(Part(
            source, CONFIRMED if inside else REFUTED,
            f"odebench {ADJOINT} backward/forward NFE {spread.text(_g)}, "
            f"{'inside' if inside else 'outside'} [{low:.2f}, {high:.2f}]"
            + (f". Medians of the others: {others}" if others else "")))
    return Claim(
        key="b",
        statement="The adjoint's backward pass costs about half the function evaluations of "
                  "the forward pass.",
        source="Chen et al. 2018, Fig. 3 (c)",
        parts=tuple(parts),
        links=(Link("table", "models_nfe_ratio"), Link("figure", "models_nfe_ratio"),
               Link("table", "nfe")),
        data="training: the models study's training runs (mean over training per run; not "
             "its one-step memory rows); benchmarks: the gradient runs of the other studies",
    )


# --------------------------------------------------------------------------- (c)


def _paired(rows: pd.DataFrame, column: str) -> list[float]:
    """``backprop / adjoint`` of ``column`` over configurations that ran both, ok."""
    ratios = []
    for by_gradient in _configs(_ok(_study(rows, "gradient_accuracy", "lorenz_drift",
                                           "memory_scaling"))).values():
        if "backprop" in by_gradient and ADJOINT in by_gradient:
            a, b = by_gradient["backprop"].get(column), by_gradient[ADJOINT].get(column)
            if _finite(a) and _finite(b) and b > 0:
                ratios.append(float(a) / float(b))
    return ratios


def claim_backprop_cost(rows: pd.DataFrame) -> Claim:
    """(c) Backpropagating through the solver has a high memory cost and extra error."""
    memory = Spread.of(_paired(rows, "saved_bytes"))
    if memory is None:
        mem = Part("memory", NOT_MEASURED, f"no configuration ran both backprop and {ADJOINT} "
                   "with saved bytes")
    else:
        mem = Part("memory", CONFIRMED if memory.median >= MEMORY_COST_FACTOR else REFUTED,
                   f"backprop's saved bytes / {ADJOINT}'s, per configuration: "
                   f"{memory.text(_x)} (high: at least {MEMORY_COST_FACTOR:g}x)")
    pairs = _paired(rows, "grad_error")
    error = Spread.of(pairs)
    if error is None:
        err = Part("numerical error", NOT_MEASURED, f"no configuration ran both backprop and "
                   f"{ADJOINT} with a gradient error")
    else:
        worse = sum(r > 1 for r in pairs)
        share = worse / len(pairs)
        verdict = CONFIRMED if share >= MAJORITY else REFUTED if share <= 1 - MAJORITY \
            else PARTLY
        err = Part("numerical error", verdict,
                   f"backprop's gradient error / {ADJOINT}'s, per configuration: "
                   f"{error.text(_g)}; backprop less accurate in {worse} of {len(pairs)} "
                   f"(confirmed from {MAJORITY:.0%}, refuted up to {1 - MAJORITY:.0%})")
    return Claim(
        key="c",
        statement="Don't backpropagate through the solver's operations: it has a high memory "
                  "cost and introduces extra numerical error.",
        source="Chen et al. 2018, Sec. 2",
        parts=(mem, err),
        links=(Link("table", "memory"), Link("table", "gradient_error"),
               Link("table", "lorenz_drift")),
        data="configurations of gradient_accuracy, lorenz_drift and memory_scaling that ran "
             f"both backprop and {ADJOINT} (same problem, backend, tolerances, T, sizes)",
    )


# --------------------------------------------------------------------------- (d)


def _drift(group: pd.DataFrame) -> tuple[float | None, tuple[float, str] | None, float]:
    """(first T whose gradient error passes the threshold, (first T stopped, status), the
    largest ok error) of one method's Lorenz rows."""
    group = group.assign(T=_column(group, "T"), err=_column(group, "grad_error")).sort_values("T")
    ok = group[group["status"] == "ok"]
    passed = ok[ok["err"] > DRIFT_THRESHOLD]
    stopped = group[group["status"] != "ok"]
    first_stop = (float(stopped["T"].iloc[0]), str(stopped["status"].iloc[0])) \
        if len(stopped) else None
    return (float(passed["T"].iloc[0]) if len(passed) else None, first_stop,
            float(ok["err"].max()) if ok["err"].notna().any() else math.nan)


def claim_backsolve_drift(rows: pd.DataFrame) -> Claim:
    """(d) Backsolve's reverse integration drifts on Lorenz; the other methods do not."""
    data = _study(rows, "lorenz_drift")
    data = data[_column(data, "T").notna()] if not data.empty else data
    if data.empty:
        part = Part("drift", NOT_MEASURED, "no lorenz_drift rows")
        return _drift_claim((part,))
    texts, backsolve_drifts, others_drift = [], [], []
    for (backend, gradient), group in data.groupby(["backend", "gradient"], sort=True):
        passed, stop, worst = _drift(group)
        t_range = f"T {group['T'].min():g}-{group['T'].max():g}"
        if str(gradient).startswith(ADJOINT):
            backsolve_drifts.append(passed is not None or stop is not None)
            text = f"{backend} {gradient}: error passes {DRIFT_THRESHOLD:g} at " + (
                f"T {passed:g}" if passed is not None else f"no T ({t_range})")
            text += f", stops at T {stop[0]:g} ({stop[1]})" if stop else ", never stops"
            texts.insert(0, text)
        else:
            others_drift.append(passed is not None)
            texts.append(f"{backend} {gradient}: largest error {_g(worst)} over {t_range}"
                         + (f", passes at T {passed:g}" if passed is not None else "")
                         + (f", stops at T {stop[0]:g} ({stop[1]})" if stop else ""))
    if not backsolve_drifts:
        part = Part("drift", NOT_MEASURED, f"no lorenz_drift rows of {ADJOINT}")
    elif all(backsolve_drifts) and not any(others_drift):
        part = Part("drift", CONFIRMED, "; ".join(texts))
    elif not any(backsolve_drifts):
        part = Part("drift", REFUTED, "; ".join(texts))
    else:
        part = Part("drift", PARTLY, "; ".join(texts))
    return _drift_claim((part,))


def _drift_claim(parts: tuple[Part, ...]) -> Claim:
    return Claim(
        key="d",
        statement="The backsolve adjoint's reverse integration drifts on chaotic systems: on "
                  "Lorenz its gradient error grows with T, the other methods' do not.",
        source="public discussion (e.g. Gholami et al. 2019, ANODE; Zhuang et al. 2020, ACA)",
        parts=parts,
        links=(Link("table", "lorenz_drift"), Link("figure", "lorenz_drift")),
        data=f"Lorenz-63, gradient error relative L2; drifted: above {DRIFT_THRESHOLD:g}",
    )


# --------------------------------------------------------------------------- (e)


def claim_nfe_growth(rows: pd.DataFrame) -> Claim:
    """(e) NFE grows during training; a looser tolerance at test time buys speed."""
    models = _ok(_study(rows, "models"))
    return Claim(
        key="e",
        statement="The number of function evaluations grows during training; at test time a "
                  "looser tolerance buys speed at a small cost in accuracy.",
        source="Chen et al. 2018, Fig. 3 (a, b, d)",
        parts=(_nfe_growth(models), _tolerance_sweep(models)),
        links=(Link("figure", "models_nfe"), Link("table", "models")),
        data="growth: the models study's training runs (each on its own data set); tolerance: "
             f"its ODE-Net trained once, evaluated on the digits test set at several tolerances "
             f"(rows {TEST_TOLERANCE_MODEL})",
    )


def _nfe_growth(runs: pd.DataFrame) -> Part:
    """Forward NFE per iteration, median over a run's last ``extra["nfe_growth_window"]``
    iterations over that of its first ones (``nfe_forward_last`` / ``nfe_forward_first``;
    backward beside)."""
    def ratio(kind: str) -> pd.Series:
        first = pd.to_numeric(_extra(runs, f"nfe_{kind}_first"), errors="coerce")
        last = pd.to_numeric(_extra(runs, f"nfe_{kind}_last"), errors="coerce")
        return (last / first.where(first > 0)).dropna()

    growth = ratio("forward")
    spread = Spread.of(growth)
    if spread is None:
        return Part("NFE during training", NOT_MEASURED, "no models row records the median "
                    "forward NFE of its first and last training iterations")
    windows = pd.to_numeric(_extra(runs.loc[growth.index], "nfe_growth_window"),
                            errors="coerce").dropna()
    window = (f"{_span(windows, lambda v: f'{v:.0f}')} iterations each" if len(windows)
              else "iterations per window not recorded")
    grown = int((growth > NFE_GROWTH_FACTOR).sum())
    backward = Spread.of(ratio("backward"))
    return Part(
        "NFE during training", CONFIRMED if spread.median > NFE_GROWTH_FACTOR else REFUTED,
        f"forward NFE per iteration, median over the last iterations / over the first ones "
        f"({window}), per run: {spread.text(_x)}; grew by more than "
        f"{NFE_GROWTH_FACTOR:g}x in {grown} of {spread.n} runs"
        + (f"; backward NFE: {backward.text(_x)}" if backward is not None else ""))


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _sweeps(runs: pd.DataFrame) -> list[pd.DataFrame]:
    """The ``TEST_TOLERANCE_MODEL`` rows per trained model (training settings in ``params``,
    mode, device, dtype), the latest row per test rtol, sorted tightest first."""
    data = runs[runs["model"] == TEST_TOLERANCE_MODEL]
    data = data.assign(
        nfe=_column(data, "nfe_forward"), wall=_column(data, "wall_forward_s"),
        iqr=_column(data, "wall_forward_iqr_s"), repeats=_column(data, "n_repeats"),
        zt=_column(data, "sol_error"), rtol_=_column(data, "rtol"),
        test_error=pd.to_numeric(_extra(data, "test_error"), errors="coerce"),
        trained=[repr(sorted(as_dict(p).items())) for p in data["params"]],
    ).dropna(subset=["nfe", "rtol_", "test_error"]).sort_values("timestamp", kind="stable")
    return [group.drop_duplicates("rtol_", keep="last").sort_values("rtol_")
            for _, group in data.groupby(["trained", "mode", "device", "dtype"], sort=True,
                                         dropna=False)
            if group["rtol_"].nunique() >= 2]


def _sweep_point(point: pd.Series) -> str:
    wall = "wall not recorded" if not _finite(point["wall"]) else f"wall {_ms(point['wall'])}" \
        + (f" (IQR {_ms(point['iqr'])}, N {point['repeats']:.0f})" if _finite(point["iqr"])
           and _finite(point["repeats"]) else "")
    zt = f", z(T) error {_g(point['zt'])}" if _finite(point["zt"]) else ""
    return (f"rtol {point['rtol_']:g}: NFE {point['nfe']:.0f}, {wall}, "
            f"test error {_pct(point['test_error'])}{zt}")


def _sweep_verdict(sweep: pd.DataFrame) -> tuple[str, str]:
    """(verdict, summary) of one sweep, tightest rtol first: confirmed when NFE never rises as
    rtol loosens and falls overall, the wall falls (loosest below tightest) and every looser
    tolerance's test error is within ``TEST_ERROR_CHANGE_MAX`` of the tightest's; partly when
    only some looser tolerances are both faster and that accurate; else refuted."""
    tight, looser = sweep.iloc[0], sweep.iloc[1:]
    timed = _finite(tight["wall"]) and looser["wall"].notna().all()
    faster = (looser["nfe"] < tight["nfe"]) & ((looser["wall"] < tight["wall"]) if timed
                                               else True)
    close = (looser["test_error"] - tight["test_error"]).abs() <= TEST_ERROR_CHANGE_MAX
    falls = bool(faster.iloc[-1]) and bool((sweep["nfe"].diff().dropna() <= 0).all())
    change = float((looser["test_error"] - tight["test_error"]).abs().max())
    verdict = CONFIRMED if falls and close.all() else PARTLY if (faster & close).any() \
        else REFUTED
    loose = sweep.iloc[-1]
    summary = (f"from rtol {tight['rtol_']:g} to {loose['rtol_']:g}, NFE "
               f"{tight['nfe']:.0f} -> {loose['nfe']:.0f} "
               f"({'never rising' if falls else 'not falling throughout'}), "
               + (f"wall {_ms(tight['wall'])} -> {_ms(loose['wall'])}, " if timed
                  else "wall not recorded at every tolerance, ")
               + f"test error changes by at most {_pct(change)} (small: at most "
               f"{_pct(TEST_ERROR_CHANGE_MAX)})")
    return verdict, summary


def _tolerance_sweep(runs: pd.DataFrame) -> Part:
    """Test-time NFE, wall and test error against rtol of the trained ODE-Net: the
    ``TEST_TOLERANCE_MODEL`` rows (one per test rtol = atol, a forward pass over the test
    set; ``sol_error`` the ODE block's z(T) error against a float64 solve)."""
    texts, verdicts = [], []
    for sweep in _sweeps(runs):
        verdict, summary = _sweep_verdict(sweep)
        verdicts.append(verdict)
        first = sweep.iloc[0]
        extra = as_dict(first["extra"])
        trained = as_dict(first["params"])
        n_test = extra.get("n_test")
        reference = as_dict(extra.get("sol_error_reference"))
        text = (f"ODE-Net trained ({first['mode']}, {trained.get('train_gradient', '?')}) at "
                f"rtol {_g(extra['train_rtol']) if _finite(extra.get('train_rtol')) else '?'}, "
                f"evaluated on {n_test if _finite(n_test) else 'the'} test images: "
                + "; ".join(_sweep_point(p) for _, p in sweep.iterrows())
                + f". {summary[0].upper()}{summary[1:]}")
        if reference:
            text += (f". z(T) error: relative L2 on {reference.get('n_images', '?')} test "
                     f"images against a {reference.get('dtype', '?')} solve at rtol "
                     f"{reference.get('rtol', '?')}"
                     + (f" (its distance to a 10x tighter one {_g(reference['spread'])})"
                        if _finite(reference.get("spread")) else ""))
        texts.append(text)
    if not verdicts:
        return Part("looser tolerance at test time", NOT_MEASURED,
                    f"no ok {TEST_TOLERANCE_MODEL} rows of one trained model at two or more "
                    "test tolerances")
    verdict = verdicts[0] if len(set(verdicts)) == 1 else PARTLY
    return Part("looser tolerance at test time", verdict, "; ".join(texts))


# --------------------------------------------------------------------------- (f)


def _explicit(method: Any) -> bool:
    return isinstance(method, str) and method not in ODEBENCH_IMPLICIT + IMPLICIT_METHODS


def claim_stiff(rows: pd.DataFrame) -> Claim:
    """(f) On stiff problems an explicit method costs far more than an implicit one."""
    data = _study(rows, "stiff")
    if not data.empty and "gradient" in data.columns:
        data = data[data["gradient"].isna()]
    texts, verdicts = [], []
    columns = ["problem", "rtol", "dtype"]
    for (problem, rtol, dtype), group in (data.groupby(columns, sort=True) if not data.empty
                                          else []):
        implicit = _ok(group[group["method"] == IMPLICIT_REFERENCE])
        explicit = group[[_explicit(m) for m in group["method"]]]
        if implicit.empty or explicit.empty:
            continue
        base = float(_column(implicit, "nfe_forward").iloc[-1])
        for _, row in explicit.iterrows():
            projected = as_dict(row.get("extra")).get("projected_nfe")
            if row["status"] == "ok" and _finite(row.get("nfe_forward")):
                cost, how = float(row["nfe_forward"]), "NFE"
            elif _finite(projected):
                cost, how = float(projected), f"projected NFE ({row['status']} at t=" + \
                    f"{as_dict(row.get('extra')).get('t_reached', float('nan')):.3g})"
            else:
                continue
            ratio = cost / base
            verdicts.append(ratio >= STIFF_COST_FACTOR)
            texts.append(f"{problem} ({dtype}, rtol {rtol:g}): {row['method']} {how} "
                         f"{cost:,.0f} vs {IMPLICIT_REFERENCE} {base:,.0f} ({ratio:,.0f}x)")
    if not verdicts:
        part = Part("explicit cost", NOT_MEASURED, f"no stiff problem ran both an explicit "
                    f"method and {IMPLICIT_REFERENCE} at one tolerance")
    else:
        verdict = CONFIRMED if all(verdicts) else REFUTED if not any(verdicts) else PARTLY
        part = Part("explicit cost", verdict, "; ".join(texts) +
                    f" (far more: at least {STIFF_COST_FACTOR:g}x)")
    return Claim(
        key="f",
        statement="Stiff problems need implicit methods: an explicit solver's cost explodes.",
        source="Hairer & Wanner, Solving ODEs II, Sec. IV.1; SciMLBenchmarks",
        parts=(part,),
        links=(Link("table", "stiff"), Link("figure", "stiff_scd_nfe")),
        data="the stiff study (Bari test set problems and a stiff linear system); a stopped "
             "explicit run is costed by its NFE projected to the end of the interval",
    )


# --------------------------------------------------------------------------- (g)


def _seminorm_part(name: str, found: list[seminorm.Pair]) -> Part:
    """The verdict on the pairs of ``found`` measured against the paper's baseline norm
    (``per_part``), the other pairs' savings in the evidence."""
    baseline = [p for p in found if p.line[2] == SEMINORM_BASELINE]
    savings = [s for p in baseline for s in p.nfe]
    spread = Spread.of(savings)
    if spread is None:
        why = "no seminorm curve brackets a plain one's gradient error" if found else \
            "no case ran with and without the seminorm"
        return Part(name, NOT_MEASURED, why)
    verdict = CONFIRMED if spread.median >= SEMINORM_SAVING_CONFIRM else \
        REFUTED if spread.median <= SEMINORM_SAVING_REFUTE else PARTLY
    lines = {}
    for pair in found:
        lines.setdefault(pair.label, []).append(pair)
    per_line = []
    for label, group in sorted(lines.items()):
        nfe = Spread.of([s for p in group for s in p.nfe])
        wall = Spread.of([s for p in group for s in p.wall])
        same = Spread.of([s for p in group for s in p.same_tol])
        none = "no point bracketed"
        per_line.append(
            f"{label}: backward NFE saved {nfe.text(_pct) if nfe else none}, backward wall "
            f"saved {wall.text(_pct) if wall else none} (at equal gradient error); backward "
            f"NFE saved at equal tolerance {same.text(_pct) if same else 'none'}")
    return Part(name, verdict,
                f"backward-NFE saving at equal gradient error against the {SEMINORM_BASELINE} "
                f"norm: {spread.text(_pct)} (paper: median {PAPER_SEMINORM_SAVING:.0%}; "
                f"confirmed from {SEMINORM_SAVING_CONFIRM:.0%}, refuted up to "
                f"{SEMINORM_SAVING_REFUTE:.0%}). Per line, over {len({p.problem for p in found})}"
                f" problem(s): " + "; ".join(per_line))


def claim_seminorm(rows: pd.DataFrame) -> Claim:
    """(g) The seminorm cuts the adjoint's backward NFE (Kidger, Chen & Lyons 2021)."""
    data = _study(rows, "seminorm")
    found = seminorm.pairs(data.to_dict("records")) if not data.empty else []
    cnf = [p for p in found if p.problem.startswith("cnf_")]
    others = [p for p in found if not p.problem.startswith("cnf_")]
    return Claim(
        key="g",
        statement="Leaving the parameter adjoints out of the backward solve's error norm (a "
                  f"seminorm) needs a median {PAPER_SEMINORM_SAVING:.0%} (up to "
                  f"{PAPER_SEMINORM_MAX:.0%}) fewer backward function evaluations.",
        source="Kidger, Chen & Lyons, \"Hey, that's not an ODE\", ICML 2021 (arXiv:2009.09457), "
               "abstract",
        parts=(_seminorm_part("CNF", cnf),
               _seminorm_part("MLP field, parameters >> states", others)),
        links=(Link("table", "seminorm"), Link("figure", "seminorm")),
        data="the seminorm study: FFJORD-style CNFs on 2-D toy densities (a few training steps "
             "from a random field) and random MLP fields; dopri5 at several rtol, atol = rtol "
             "and rtol / 100; "
             "savings at equal gradient error (log-log interpolation on each curve, "
             "odebench.report.seminorm); the verdict compares with the per-part max norm, the "
             "paper's (torchdiffeq's) default",
    )


#: The claims in page order.
CLAIMS: tuple[Callable[[pd.DataFrame], Claim], ...] = (
    claim_accuracy,
    claim_backward_nfe,
    claim_backprop_cost,
    claim_backsolve_drift,
    claim_nfe_growth,
    claim_stiff,
    claim_seminorm,
)


def evaluate_claims(rows: pd.DataFrame) -> list[Claim]:
    """Every claim of ``CLAIMS`` judged from ``rows`` (missing result columns count as empty)."""
    rows = rows.reindex(columns=[*COLUMNS, *(c for c in rows.columns if c not in COLUMNS)])
    return [claim(rows) for claim in CLAIMS]


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(claims: Sequence[Claim]) -> str:
    """The claims as a Markdown table, then each claim's parts and numbers."""
    lines = ["### Claims of the Neural ODE paper and its follow-ups, judged from the rows", "",
             "| | claim | verdict | source |", "|---|---|---|---|"]
    lines += [f"| {c.key} | {_md(c.statement)} | {c.verdict} | {_md(c.source)} |"
              for c in claims]
    for claim in claims:
        lines += ["", f"**({claim.key}) {claim.verdict}.** {claim.statement}"]
        if claim.data:
            lines.append(f"Data: {claim.data}.")
        lines += [f"- {part.name}: **{part.verdict}**. {part.evidence}" for part in claim.parts]
    return "\n".join(lines) + "\n"


def write_claims(claims: Sequence[Claim], directory: Path) -> Path:
    """Write ``directory/claims.md`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "claims.md"
    path.write_text(to_markdown(claims), encoding="utf-8")
    return path
