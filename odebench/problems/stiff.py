"""Stiff problems: the Test Set for IVP Solvers (ROBER, HIRES, VDPOL, OREGO, POLLU, E5)
and a linear system with a closed form.

Right-hand sides are transcribed from the Test Set's Fortran ``feval`` subroutines,
https://archimede.uniba.it/~testset/testsetivpsolvers/ (``src/problems/<name>.f``),
with the rate constants lifted into the parameter vector ``p`` so that they are
differentiable. Published values are the files' ``solut`` subroutines (computed by the Test
Set authors with RADAU/RADAU5 at rtol = atol = 1.1e-18, uround 1.01e-19) and, at other output
times, E. Hairer's testset data ``<name>_exact.txt``, https://www.unige.ch/~hairer/testset/testset.html.
Each factory takes ``T``, the final time; output times are the problem's standard grid up to
``T``, and the reference is the published value at ``T`` where there is one. ``atol`` is the
absolute tolerance that the float64 reference (SciPy Radau, rtol 1e-12) runs with; the comment
at each says how well that reproduces the published values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
from torch import Tensor

from odebench.errors import InvalidInputError
from odebench.problems.base import Problem, Reference, as_f64

TESTSET_URL = "https://archimede.uniba.it/~testset/testsetivpsolvers/src/problems/"
HAIRER_URL = "https://www.unige.ch/~hairer/testset/testset.html"

PublishedTable = dict[float, tuple[tuple[float, ...], str]]


def _output_times(grid: tuple[float, ...], T: float) -> Tensor:
    """The points of ``grid`` before ``T``, then ``T``, as float64."""
    if not (T > grid[0]):
        raise InvalidInputError(f"T must be greater than the start time {grid[0]}, got {T!r}")
    return as_f64(tuple(g for g in grid if g < T) + (float(T),))


def _published(table: PublishedTable, T: float) -> Reference | None:
    """The published value at ``T`` in ``table`` (exact float match), else None."""
    entry = table.get(float(T))
    if entry is None:
        return None
    values, source = entry
    return Reference(t=float(T), y=as_f64(values), source=source)


# --- ROBER --------------------------------------------------------------------------------


def _rober_rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    y1, y2, y3 = y.unbind(-1)
    k1, k2, k3 = p.unbind(0)
    return torch.stack(
        [
            -k1 * y1 + k2 * y2 * y3,
            k1 * y1 - k2 * y2 * y3 - k3 * y2 * y2,
            k3 * y2 * y2,
        ],
        dim=-1,
    )


ROBER_GRID = (0.0,) + tuple(4.0 * 10.0**k for k in range(-1, 11))
ROBER_PUBLISHED: PublishedTable = {
    1e11: (
        (0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050e00),
        f"Test Set rober.f solut, {TESTSET_URL}rober.f",
    ),
}


def rober(T: float = 1e11) -> Problem:
    """Robertson chemical kinetics, n = 3, ``p = (k1, k2, k3) = (0.04, 1e4, 3e7)``."""
    return Problem(
        name="rober",
        rhs=_rober_rhs,
        y0=as_f64((1.0, 0.0, 0.0)),
        # Rate constants in Test Set order, rober.f feval.
        p=as_f64((0.04, 1e4, 3e7)),
        t_eval=_output_times(ROBER_GRID, T),
        stiff=True,
        reference=_published(ROBER_PUBLISHED, T),
        description=(
            f"ROBER, Robertson kinetics on [0, 1e11] ({TESTSET_URL}rober.f); p = (k1, k2, k3) = "
            "(0.04, 1e4, 3e7) in Test Set order, k2 multiplying y2*y3 and k3 y2^2 "
            "(SciMLBenchmarks orders them (0.04, 3e7, 1e4)); invariant y1 + y2 + y3 = 1."
        ),
        # Reference (Radau, rtol 1e-12) at this atol: y3 to 1e-14, y1 and y2 to ~1e-8 relative.
        atol=1e-14,
    )


# --- HIRES --------------------------------------------------------------------------------


def _hires_rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    y1, y2, y3, y4, y5, y6, y7, y8 = y.unbind(-1)
    k1, k2, k3, k4, k5, k6, k7, k8, k9, oks = p.unbind(0)
    f7 = k7 * y6 * y8 - (k2 + k8 + k9) * y7
    return torch.stack(
        [
            -k1 * y1 + k2 * y2 + k6 * y3 + oks,
            k1 * y1 - (k2 + k3) * y2,
            -(k6 + k1) * y3 + k2 * y4 + k5 * y5,
            k3 * y2 + k1 * y3 - (k4 + k2) * y4,
            -(k5 + k1) * y5 + k2 * (y6 + y7),
            -k7 * y6 * y8 + k8 * y4 + k1 * y5 - k2 * y6 + k8 * y7,
            f7,
            -f7,
        ],
        dim=-1,
    )


HIRES_GRID = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 321.8122, 421.8122)
HIRES_PUBLISHED: PublishedTable = {
    321.8122: (
        (
            0.7371312573325668e-3, 0.1442485726316185e-3, 0.5888729740967575e-4,
            0.1175651343283149e-2, 0.2386356198831331e-2, 0.6238968252742796e-2,
            0.2849998395185769e-2, 0.2850001604814231e-2,
        ),
        f"Test Set hires.f solut, {TESTSET_URL}hires.f",
    ),
    421.8122: (
        (
            0.000670305503581864, 0.000130996846986347, 0.000046862231597733,
            0.001044668020551705, 0.000594883830951485, 0.001399628833942774,
            0.001014492757718480, 0.004685507242281520,
        ),
        f"Hairer hir_exact.txt, {HAIRER_URL}",
    ),
}


def hires(T: float = 321.8122) -> Problem:
    """HIRES, plant physiology (high irradiance response), n = 8, 10 rate constants."""
    return Problem(
        name="hires",
        rhs=_hires_rhs,
        y0=as_f64((1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057)),
        # p = (k1..k9, oks) of the parametrised hires.f (k2 + k3 = 8.75, k6 + k1 = 10.03,
        # k4 + k2 = 1.12, k5 + k1 = 1.745, k2 + k8 + k9 = 1.81 give the literals of feval).
        p=as_f64((1.71, 0.43, 8.32, 0.69, 0.035, 8.32, 280.0, 0.69, 0.69, 0.0007)),
        t_eval=_output_times(HIRES_GRID, T),
        stiff=True,
        reference=_published(HIRES_PUBLISHED, T),
        description=(
            f"HIRES on [0, 321.8122] ({TESTSET_URL}hires.f); p = (k1..k9, oks); "
            "invariant y7 + y8 = 0.0057."
        ),
        # Reference (Radau, rtol 1e-12) at this atol: all components to ~2e-13 relative.
        atol=1e-14,
    )


# --- VDPOL --------------------------------------------------------------------------------


def _vdpol_rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    y1, y2 = y.unbind(-1)
    return torch.stack([y2, ((1.0 - y1 * y1) * y2 - y1) / p[0]], dim=-1)


VDPOL_GRID = tuple(0.5 * k for k in range(23))
VDPOL_PUBLISHED: PublishedTable = {
    2.0: (
        (0.1706167732170483e01, -0.8928097010247975e00),
        f"Test Set vdpol.f solut, {TESTSET_URL}vdpol.f",
    ),
    **{
        float(t): (values, f"Hairer vdp_exact.txt, {HAIRER_URL}")
        for t, values in (
            (1, (-0.1863646254808130e01, 0.7535430865435460e00)),
            (3, (-0.1510606936744095e01, 0.1178380000730945e01)),
            (4, (0.1194414677695905e01, -0.2799585996540082e01)),
            (5, (0.1890428596416747e01, -0.7345118680166940e00)),
            (6, (-0.1737716306805883e01, 0.8604008653025923e00)),
            (7, (0.1551614645548223e01, -0.1102382892533321e01)),
            (8, (-0.1278631984330405e01, 0.2013890883009155e01)),
            (9, (-0.1916552949489830e01, 0.7169573003463228e00)),
            (10, (0.1768163792391936e01, -0.8315276407898496e00)),
            (11, (-0.1590150544829062e01, 0.1040279389212485e01)),
        )
    },
}


def vdpol(T: float = 2.0) -> Problem:
    """Van der Pol in the Test Set's scaled form, ``eps = 1e-6``, ``p = (eps,)``."""
    return Problem(
        name="vdpol",
        rhs=_vdpol_rhs,
        y0=as_f64((2.0, 0.0)),
        # eps of vdpol.f.
        p=as_f64((1e-6,)),
        t_eval=_output_times(VDPOL_GRID, T),
        stiff=True,
        reference=_published(VDPOL_PUBLISHED, T),
        description=(
            f"VDPOL, y1' = y2, y2' = ((1 - y1^2) y2 - y1)/eps, eps = 1e-6, on [0, 2] "
            f"({TESTSET_URL}vdpol.f)."
        ),
        # Reference (Radau, rtol 1e-12) at this atol: both components to ~5e-14 relative.
        atol=1e-10,
    )


# --- OREGO --------------------------------------------------------------------------------


def _orego_rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    y1, y2, y3 = y.unbind(-1)
    s, q, w = p.unbind(0)
    return torch.stack(
        [
            s * (y2 + y1 * (1.0 - q * y1 - y2)),
            (y3 - (1.0 + y1) * y2) / s,
            w * (y1 - y3),
        ],
        dim=-1,
    )


OREGO_GRID = tuple(30.0 * k for k in range(13))
OREGO_PUBLISHED: PublishedTable = {
    **{
        float(t): (values, f"Hairer ore_exact.txt, {HAIRER_URL}")
        for t, values in (
            (30, (0.1000661467180497e01, 0.1512778937348249e04, 0.1035854312767229e05)),
            (60, (0.1000874625199626e01, 0.1144336972384497e04, 0.8372149966624639e02)),
            (90, (0.1001890368438751e01, 0.5299926232295553e03, 0.1662279579042420e01)),
            (120, (0.1004118022612645e01, 0.2438326079910346e03, 0.1008822224048647e01)),
            (150, (0.1008995416634061e01, 0.1121664388662539e03, 0.1007783229065319e01)),
            (180, (0.1019763472537298e01, 0.5159761322947535e02, 0.1016985778956374e01)),
            (210, (0.1043985088527474e01, 0.2373442027531524e02, 0.1037691843544522e01)),
            (240, (0.1100849071667922e01, 0.1091533805469020e02, 0.1085831969810860e01)),
            (270, (0.1249102130020572e01, 0.5013945178605446e01, 0.1208326626237875e01)),
            (300, (0.1779724751937019e01, 0.2281852385542403e01, 0.1613754023671725e01)),
            (330, (0.1000889326903503e01, 0.1125438585746596e04, 0.1641049483777168e05)),
        )
    },
    360.0: (
        (0.1000814870318523e01, 0.1228178521549917e04, 0.1320554942846706e03),
        f"Test Set orego.f solut, {TESTSET_URL}orego.f",
    ),
}


def orego(T: float = 360.0) -> Problem:
    """Oregonator (Belousov-Zhabotinskii), n = 3, ``p = (s, q, w) = (77.27, 8.375e-6, 0.161)``."""
    return Problem(
        name="orego",
        rhs=_orego_rhs,
        y0=as_f64((1.0, 2.0, 3.0)),
        # Constants of orego.f feval.
        p=as_f64((77.27, 8.375e-6, 0.161)),
        t_eval=_output_times(OREGO_GRID, T),
        stiff=True,
        reference=_published(OREGO_PUBLISHED, T),
        description=f"OREGO, Oregonator on [0, 360], output every 30 ({TESTSET_URL}orego.f).",
        # Reference (Radau, rtol 1e-12) at this atol: all components to ~1.5e-13 relative.
        atol=1e-10,
    )


# --- POLLU --------------------------------------------------------------------------------


# The reaction rates and the right-hand side of pollu.f feval, verbatim (Fortran indices):
# r(j) = k_j * product of the listed y's; f(i) = signed sum of r's. Parsed into index tables.
POLLU_RATES_FORTRAN = """
      r( 1) = k1 *y( 1)
      r( 2) = k2 *y( 2)*y(4)
      r( 3) = k3 *y( 5)*y(2)
      r( 4) = k4 *y( 7)
      r( 5) = k5 *y( 7)
      r( 6) = k6 *y( 7)*y(6)
      r( 7) = k7 *y( 9)
      r( 8) = k8 *y( 9)*y(6)
      r( 9) = k9 *y(11)*y(2)
      r(10) = k10*y(11)*y(1)
      r(11) = k11*y(13)
      r(12) = k12*y(10)*y(2)
      r(13) = k13*y(14)
      r(14) = k14*y( 1)*y(6)
      r(15) = k15*y( 3)
      r(16) = k16*y( 4)
      r(17) = k17*y( 4)
      r(18) = k18*y(16)
      r(19) = k19*y(16)
      r(20) = k20*y(17)*y(6)
      r(21) = k21*y(19)
      r(22) = k22*y(19)
      r(23) = k23*y( 1)*y(4)
      r(24) = k24*y(19)*y(1)
      r(25) = k25*y(20)
"""
POLLU_FEVAL_FORTRAN = """
      f(1)  = -r(1)-r(10)-r(14)-r(23)-r(24)+
     +        r(2)+r(3)+r(9)+r(11)+r(12)+r(22)+r(25)
      f(2)  = -r(2)-r(3)-r(9)-r(12)+r(1)+r(21)
      f(3)  = -r(15)+r(1)+r(17)+r(19)+r(22)
      f(4)  = -r(2)-r(16)-r(17)-r(23)+r(15)
      f(5)  = -r(3)+r(4)+r(4)+r(6)+r(7)+r(13)+r(20)
      f(6)  = -r(6)-r(8)-r(14)-r(20)+r(3)+r(18)+r(18)
      f(7)  = -r(4)-r(5)-r(6)+r(13)
      f(8)  = r(4)+r(5)+r(6)+r(7)
      f(9)  = -r(7)-r(8)
      f(10) = -r(12)+r(7)+r(9)
      f(11) = -r(9)-r(10)+r(8)+r(11)
      f(12) = r(9)
      f(13) = -r(11)+r(10)
      f(14) = -r(13)+r(12)
      f(15) = r(14)
      f(16) = -r(18)-r(19)+r(16)
      f(17) = -r(20)
      f(18) = r(20)
      f(19) = -r(21)-r(22)-r(24)+r(23)+r(25)
      f(20) = -r(25)+r(24)
"""
POLLU_SPECIES = 20


def _parse_pollu() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(constant, first, second, stoich)`` of the Fortran text above, 0-based.

    Rate ``j`` is ``p[constant[j]] * y[first[j]] * y[second[j]]``, where ``second`` is
    ``POLLU_SPECIES`` (an appended 1) for a first-order rate; ``f = r @ stoich`` with the
    ``[n_rates, n_species]`` stoichiometric matrix.
    """
    constant, first, second = [], [], []
    for line in POLLU_RATES_FORTRAN.strip().splitlines():
        constant.append(int(re.findall(r"k(\d+)", line)[0]) - 1)
        factors = [int(i) - 1 for i in re.findall(r"y\(\s*(\d+)\)", line)]
        first.append(factors[0])
        second.append(factors[1] if len(factors) == 2 else POLLU_SPECIES)
    stoich = torch.zeros(len(first), POLLU_SPECIES, dtype=torch.float64)
    statement = r"f\((\d+)\)\s*=(.*?)(?=f\(\d+\)\s*=|\Z)"
    for species, expression in re.findall(statement, POLLU_FEVAL_FORTRAN, flags=re.S):
        for sign, j in re.findall(r"([+-]?)r\((\d+)\)", expression):
            stoich[int(j) - 1, int(species) - 1] += -1.0 if sign == "-" else 1.0
    return torch.tensor(constant), torch.tensor(first), torch.tensor(second), stoich


POLLU_CONSTANT, POLLU_FIRST, POLLU_SECOND, POLLU_STOICH = _parse_pollu()


def _pollu_rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    ones = torch.ones_like(y[..., :1])
    y_ext = torch.cat([y, ones], dim=-1)
    k = p[POLLU_CONSTANT.to(p.device)]
    r = k * y_ext[..., POLLU_FIRST.to(y.device)] * y_ext[..., POLLU_SECOND.to(y.device)]
    return r @ POLLU_STOICH.to(dtype=y.dtype, device=y.device)


# k1..k25 of pollu.f feval (Verwer 1994).
POLLU_RATES = (
    0.35, 0.266e2, 0.123e5, 0.86e-3, 0.82e-3, 0.15e5, 0.13e-3, 0.24e5, 0.165e5, 0.9e4,
    0.22e-1, 0.12e5, 0.188e1, 0.163e5, 0.48e7, 0.35e-3, 0.175e-1, 0.1e9, 0.444e12, 0.124e4,
    0.21e1, 0.578e1, 0.474e-1, 0.178e4, 0.312e1,
)
POLLU_GRID = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0)
POLLU_PUBLISHED: PublishedTable = {
    60.0: (
        (
            0.5646255480022769e-01, 0.1342484130422339e00, 0.4139734331099427e-08,
            0.5523140207484359e-02, 0.2018977262302196e-06, 0.1464541863493966e-06,
            0.7784249118997964e-01, 0.3245075353396018e00, 0.7494013383880406e-02,
            0.1622293157301561e-07, 0.1135863833257075e-07, 0.2230505975721359e-02,
            0.2087162882798630e-03, 0.1396921016840158e-04, 0.8964884856898295e-02,
            0.4352846369330103e-17, 0.6899219696263405e-02, 0.1007803037365946e-03,
            0.1772146513969984e-05, 0.5682943292316392e-04,
        ),
        f"Test Set pollu.f solut, {TESTSET_URL}pollu.f",
    ),
}


def pollu(T: float = 60.0) -> Problem:
    """POLLU, air pollution model of Verwer (1994), 20 species, 25 rate constants as ``p``."""
    y0 = [0.0] * 20
    y0[1], y0[3], y0[6], y0[7], y0[8], y0[16] = 0.2, 0.04, 0.1, 0.3, 0.01, 0.007
    return Problem(
        name="pollu",
        rhs=_pollu_rhs,
        y0=as_f64(tuple(y0)),
        p=as_f64(POLLU_RATES),
        t_eval=_output_times(POLLU_GRID, T),
        stiff=True,
        reference=_published(POLLU_PUBLISHED, T),
        description=(
            f"POLLU, air pollution (Verwer 1994) on [0, 60] ({TESTSET_URL}pollu.f); "
            "y16(60) ~ 4e-18, so compare with an absolute floor."
        ),
        # Reference (Radau, rtol 1e-12) at this atol: all 20 components (y16 included, it is in
        # quasi-steady state) to ~6e-14 relative.
        atol=1e-16,
    )


# --- E5 -----------------------------------------------------------------------------------


def _e5_rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    y1, y2, y3, y4 = y.unbind(-1)
    k1, k2, k3, k4 = p.unbind(0)
    prod1 = k1 * y1
    prod2 = k2 * y1 * y3
    prod3 = k3 * y2 * y3
    prod4 = k4 * y4
    f2 = prod1 - prod3
    f4 = prod2 - prod4
    return torch.stack([-prod1 - prod2, f2, f2 - f4, f4], dim=-1)


E5_GRID = (0.0, 10.0, 1e3, 1e5, 1e7, 1e9, 1e11, 1e13)
E5_PUBLISHED: PublishedTable = {
    **{
        t: (values, f"Hairer e5_exact.txt, {HAIRER_URL}")
        for t, values in (
            (10.0, (1.7599259497677897e-3, 1.3846281519376516e-11,
                    7.6370038530073911e-13, 1.3082581134075777e-11)),
            (1e3, (1.6180769999072942e-3, 1.3822370304983735e-10,
                   8.2515735006838336e-12, 1.2997212954915352e-10)),
            (1e5, (7.4813208224292220e-6, 2.3734781561205975e-12,
                   2.2123586689581663e-12, 1.6111948716243113e-13)),
            (1e7, (4.7150333630401632e-10, 1.8188895860807021e-14,
                   1.8188812376786725e-14, 8.3484020296321693e-20)),
            (1e9, (3.1317148329356996e-14, 1.4840957952870064e-16,
                   1.4840957948345691e-16, 4.5243728279782625e-26)),
            (1e11, (3.8139035189787091e-49, 1.0192582567660293e-20,
                    1.0192582567660293e-20, 3.7844935507486221e-65)),
        )
    },
    1e13: (
        (0.1152903278711829e-290, 0.8867655517642120e-022, 0.8854814626268838e-022, 0.0),
        f"Test Set e5.f solut, {TESTSET_URL}e5.f",
    ),
}


def e5(T: float = 1e13) -> Problem:
    """E5, stiff DETEST chemical problem, n = 4, ``p = (7.89e-10, 1.1e7, 1.13e9, 1.13e3)``."""
    return Problem(
        name="e5",
        rhs=_e5_rhs,
        y0=as_f64((1.76e-3, 0.0, 0.0, 0.0)),
        # Rate constants of e5.f feval.
        p=as_f64((7.89e-10, 1.1e7, 1.13e9, 1.13e3)),
        t_eval=_output_times(E5_GRID, T),
        stiff=True,
        reference=_published(E5_PUBLISHED, T),
        description=(
            f"E5 on [0, 1e13] ({TESTSET_URL}e5.f); needs atol ~1e-24. Published values are tight "
            "up to t = 1e9; from 1e11 on the split of y2 and y3 is ill-conditioned (independent "
            "solvers differ in the 4th digit; compare y2 + y3 there). Invariant y2 = y3 + y4."
        ),
        # ATOL of Hairer's e5_radau5.f driver.
        atol=1.7e-24,
    )


# --- linear -------------------------------------------------------------------------------


def _householder(v: Tensor) -> Tensor:
    """The reflection ``I - 2 v v^T / (v^T v)``, an orthogonal symmetric matrix."""
    return torch.eye(v.numel(), dtype=v.dtype) - 2.0 * torch.outer(v, v) / (v @ v)


def stiff_linear_basis(n: int) -> Tensor:
    """A fixed orthogonal ``[n, n]`` float64 matrix: the product of two Householder reflections."""
    k = torch.arange(1, n + 1, dtype=torch.float64)
    return _householder(torch.cos(k)) @ _householder(1.0 / k)


def stiff_linear(n: int = 8, stiffness: float = 1e6, T: float = 1.0, n_points: int = 11) -> Problem:
    """Linear ``y' = Q diag(p) Q^T y`` with eigenvalues ``p`` log-spaced from -1 to -``stiffness``.

    Closed form ``y(t) = Q diag(exp(p t)) Q^T y0``, which is ``expm(t A) y0``.
    """
    if n < 2:
        raise InvalidInputError(f"n must be at least 2, got {n!r}")
    Q = stiff_linear_basis(n)

    def rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
        q = Q.to(dtype=y.dtype, device=y.device)
        return (p * (y @ q)) @ q.T

    def closed_form(t: Tensor, y0: Tensor, p: Tensor) -> Tensor:
        q = Q.to(dtype=y0.dtype, device=y0.device)
        modes = torch.exp(p * (t - t[0]).unsqueeze(-1)) * (y0 @ q)
        return modes @ q.T

    problem = Problem(
        name="stiff_linear",
        rhs=rhs,
        y0=torch.ones(n, dtype=torch.float64),
        p=-torch.logspace(0.0, math.log10(stiffness), n, dtype=torch.float64),
        t_eval=torch.linspace(0.0, T, n_points, dtype=torch.float64),
        stiff=True,
        description=(
            f"Linear y' = Q diag(lambda) Q^T y, lambda log-spaced in [-{stiffness:g}, -1], Q a fixed "
            "orthogonal matrix; closed form by the matrix exponential."
        ),
        atol=1e-14,
        closed_form=closed_form,
    )
    with torch.no_grad():
        y_end = closed_form(problem.t_eval, problem.y0, problem.p)[-1]
    problem.reference = Reference(t=float(T), y=y_end, source="closed form")
    return problem


FACTORIES: dict[str, Callable[..., Problem]] = {
    "rober": rober,
    "hires": hires,
    "vdpol": vdpol,
    "orego": orego,
    "pollu": pollu,
    "e5": e5,
    "stiff_linear": stiff_linear,
}
