"""Rosenbrock (Rodas-type) methods as data: every linearly implicit method odebench runs is a table.

One loop (:mod:`odebench.solvers.rosenbrock`) runs them all. The tables use the transformed form
of Hairer & Wanner, Solving ODEs II, VI.7 (7.25), in which the stages ``k_i`` are increments of
the state (same units as ``y``):

    (I / (h gamma) - J) k_i = f(t + c_i h, y + sum_j a_ij k_j) + sum_j (C_ij / h) k_j
                              + h d_i df/dt,        J = df/dy (t, y),
    y1 = y + sum_i b_i k_i,    error estimate  sum_i b_error_i k_i,

with the continuous extension (``dense`` = the H matrix, q rows)

    y(t + theta h) = (1 - theta) y + theta y1 + theta (1 - theta) sum_j theta^(j-1) (H k)_j.

The Rodas methods are stiffly accurate: the last row of ``a`` plus ``k_s`` gives ``y1`` and the
last row alone the embedded solution, so ``b = a[s-1] + e_s`` and ``b_error = e_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from odebench.solvers.tableaus import lower_triangle


@dataclass(frozen=True)
class RosenbrockTableau:
    """A Rosenbrock method in the transformed (Hairer-Wanner VI.7) form.

    Attributes:
        name: the method's name as accepted by ``method=``.
        gamma: the diagonal coefficient (dimensionless).
        a: strictly lower-triangular stage-input matrix, shape [s, s].
        C: strictly lower-triangular coupling matrix of the previous stages, shape [s, s].
        c: nodes ``sum_j alpha_ij``, shape [s].
        d: time-derivative weights ``gamma_i = sum_j gamma_ij``, shape [s].
        b: solution weights, shape [s].
        b_error: weights of the embedded error estimate (in state units), shape [s].
        order: order of ``y1``.
        error_order: order of the embedded solution; the controller exponent is
            ``1 / (error_order + 1)``.
        dense: the dense-output matrix H, shape [q, s].
        dense_order: order of the continuous extension.
        source: where the coefficients come from.
    """

    name: str
    gamma: float
    a: np.ndarray
    C: np.ndarray
    c: np.ndarray
    d: np.ndarray
    b: np.ndarray
    b_error: np.ndarray
    order: int
    error_order: int
    dense: np.ndarray
    dense_order: int
    source: str = ""

    @property
    def stages(self) -> int:
        """Number of stages (linear solves and evaluations of ``f``) of one step."""
        return len(self.c)

    @property
    def adaptive(self) -> bool:
        """Rosenbrock methods here always carry an embedded error estimate."""
        return True


def _rodas(name: str, gamma: float, a_rows: list[list[float]], c_rows: list[list[float]],
           c: list[float], d: list[float], dense: list[list[float]], order: int,
           dense_order: int, source: str) -> RosenbrockTableau:
    """A stiffly accurate Rodas method: ``b = a[s-1] + e_s``, ``b_error = e_s``."""
    a = lower_triangle(a_rows)
    s = len(a_rows)
    e_last = np.eye(s)[s - 1]
    return RosenbrockTableau(
        name=name, gamma=gamma, a=a, C=lower_triangle(c_rows), c=np.asarray(c, dtype=float),
        d=np.asarray(d, dtype=float), b=a[s - 1] + e_last, b_error=e_last, order=order,
        error_order=order - 1, dense=np.asarray(dense, dtype=float), dense_order=dense_order,
        source=source)


# Hairer & Wanner, Solving ODEs II (1996), VI.4 "RODAS" and its code rodas.f (METH=1), with its
# 3rd-order dense output; numbers as in SciML OrdinaryDiffEq.jl, lib/OrdinaryDiffEqRosenbrock/src/
# rosenbrock_tableaus.jl (Rodas4Tableau).
_R4_A5 = [1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950]
RODAS4 = _rodas(
    "rodas4",
    gamma=0.25,
    a_rows=[
        [],
        [1.544],
        [0.9466785280815826, 0.2557011698983284],
        [3.314825187068521, 2.896124015972201, 0.9986419139977817],
        _R4_A5,
        _R4_A5 + [1.0],
    ],
    c_rows=[
        [],
        [-5.6688],
        [-2.430093356833875, -0.2063599157091915],
        [-0.1073529058151375, -9.594562251023355, -20.47028614809616],
        [7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160],
        [8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136,
         -6.058818238834054],
    ],
    c=[0.0, 0.386, 0.21, 0.63, 1.0, 1.0],
    d=[0.25, -0.1043, 0.1035, -0.0362, 0.0, 0.0],
    dense=[
        [10.12623508344586, -7.487995877610167, -34.80091861555747, -7.992771707568823,
         1.025137723295662, 0.0],
        [-0.6762803392801253, 6.087714651680015, 16.43084320892478, 24.76722511418386,
         -6.594389125716872, 0.0],
    ],
    order=4,
    dense_order=3,
    source="Hairer & Wanner, Solving ODEs II (1996), VI.4, code rodas.f; via OrdinaryDiffEq.jl",
)

# Steinebach, "Construction of Rosenbrock-Wanner method Rodas5P and numerical benchmarks within
# the Julia Differential Equations package", BIT Numer. Math. 63:27 (2023); numbers as in SciML
# OrdinaryDiffEq.jl, lib/OrdinaryDiffEqRosenbrock/src/rosenbrock_tableaus.jl (Rodas5PTableau).
_R5P_A6 = [-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256,
           0.030198172008377946]
RODAS5P = _rodas(
    "rodas5p",
    gamma=0.21193756319429014,
    a_rows=[
        [],
        [3.0],
        [2.849394379747939, 0.45842242204463923],
        [-6.954028509809101, 2.489845061869568, -10.358996098473584],
        [2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641],
        _R5P_A6,
        _R5P_A6 + [1.0],
        _R5P_A6 + [1.0, 1.0],
    ],
    c_rows=[
        [],
        [-14.155112264123755],
        [-17.97296035885952, -2.859693295451294],
        [147.12150275711716, -1.41221402718213, 71.68940251302358],
        [165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306],
        [24.854864614690072, -3.0009227002832186, 47.4931110020768, 5.5814197821558125,
         -0.6610691825249471],
        [30.91273214028599, -3.1208243349937974, 77.79954646070892, 34.28646028294783,
         -19.097331116725623, -28.087943162872662],
        [37.80277123390563, -3.2571969029072276, 112.26918849496327, 66.9347231244047,
         -40.06618937091002, -54.66780262877968, -9.48861652309627],
    ],
    c=[0.0, 0.6358126895828704, 0.4095798393397535, 0.9769306725060716, 0.4288403609558664,
       1.0, 1.0, 1.0],
    d=[0.21193756319429014, -0.42387512638858027, -0.3384627126235924, 1.8046452872882734,
       2.325825639765069, 0.0, 0.0, 0.0],
    dense=[
        [25.948786856663858, -2.5579724845846235, 10.433815404888879, -2.3679251022685204,
         0.524948541321073, 1.1241088310450404, 0.4272876194431874, -0.17202221070155493],
        [-9.91568850695171, -0.9689944594115154, 3.0438037242978453, -24.495224566215796,
         20.176138334709044, 15.98066361424651, -6.789040303419874, -6.710236069923372],
        [11.419903575922262, 2.8879645146136994, 72.92137995996029, 80.12511834622643,
         -52.072871366152654, -59.78993625266729, -0.15582684282751913, 4.883087185713722],
    ],
    order=5,
    dense_order=4,
    source=("Steinebach, BIT Numer. Math. 63:27 (2023), Rodas5P; via OrdinaryDiffEq.jl "
            "rosenbrock_tableaus.jl"),
)

ROSENBROCK_TABLEAUS: dict[str, RosenbrockTableau] = {t.name: t for t in (RODAS5P, RODAS4)}
