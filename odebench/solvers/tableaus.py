"""Butcher tableaus as data: every explicit Runge-Kutta method odebench runs is a table here.

One loop (:mod:`odebench.solvers.explicit`) runs them all. A tableau with ``b_error`` is adaptive;
``dense`` holds the polynomial coefficients of its continuous extension, so that
``y(t0 + theta*h) = y0 + h * sum_i w_i(theta) k_i`` with ``w(theta) = dense @ [theta, theta^2, ...]``.
First-same-as-last (FSAL) methods carry their last stage ``f(t0 + h, y1)`` as an ordinary stage
whose row of ``a`` equals ``b``; it is reused as the first stage of the next step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method.

    Attributes:
        name: the method's name as accepted by ``method=``.
        c: nodes, shape [s].
        a: strictly lower-triangular stage matrix, shape [s, s].
        b: solution weights, shape [s] (zero on a trailing FSAL stage).
        order: classical order of the propagated solution.
        b_error: weights of the embedded error estimate ``h * sum b_error_i k_i``, shape [s],
            or ``None`` for a fixed-step method.
        error_order: order of the embedded (lower-order) solution; the controller exponent is
            ``1 / (error_order + 1)``.
        dense: continuous-extension coefficients, shape [s_dense, q], columns for theta^1..theta^q.
            ``s_dense > s`` means extra stages (``c_extra``, ``a_extra``) are needed for dense output.
        c_extra, a_extra: the extra dense-output stages (rows over all previous stages).
        b_error3: DOP853's third-order error weights, combined with ``b_error`` as in Hairer's code.
        source: where the coefficients come from.
    """

    name: str
    c: np.ndarray
    a: np.ndarray
    b: np.ndarray
    order: int
    b_error: np.ndarray | None = None
    error_order: int = 0
    dense: np.ndarray | None = None
    c_extra: np.ndarray = field(default_factory=lambda: np.zeros(0))
    a_extra: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    b_error3: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        """Refuse an inconsistent table: shapes, a strictly lower-triangular ``a`` whose row sums
        are ``c``, weights summing to 1, and the error weights summing to 0."""
        s = len(self.c)
        shapes = {"a": (self.a.shape, (s, s)), "b": (self.b.shape, (s,))}
        if self.b_error is not None:
            shapes["b_error"] = (self.b_error.shape, (s,))
        for name, (got, want) in shapes.items():
            if got != want:
                raise ValueError(f"tableau '{self.name}': {name} has shape {got}, expected {want}")
        if np.any(np.triu(self.a) != 0):
            raise ValueError(f"tableau '{self.name}': a is not strictly lower-triangular")
        if not np.allclose(self.a.sum(axis=1), self.c, atol=1e-14):
            raise ValueError(f"tableau '{self.name}': the row sums of a differ from c")
        if abs(self.b.sum() - 1) > 1e-14:
            raise ValueError(f"tableau '{self.name}': the weights b do not sum to 1")
        if self.b_error is not None and abs(self.b_error.sum()) > 1e-14:
            raise ValueError(f"tableau '{self.name}': the error weights do not sum to 0")

    @property
    def stages(self) -> int:
        """Number of stages of one step, FSAL stage included."""
        return len(self.c)

    @property
    def fsal(self) -> bool:
        """First same as last, derived from the table: the last stage is ``f(t0 + h, y1)`` (node
        1, row of ``a`` equal to ``b``, no weight of its own)."""
        s = len(self.c)
        return bool(s > 1 and self.c[-1] == 1.0 and self.b[-1] == 0.0
                and bool(np.array_equal(self.a[-1, : s - 1], self.b[: s - 1])))

    @property
    def adaptive(self) -> bool:
        """True when the tableau has an embedded error estimate."""
        return self.b_error is not None


def lower_triangle(rows: list[list[float]]) -> np.ndarray:
    """Square strictly lower-triangular matrix whose row i holds ``rows[i]`` (length i); the one
    builder of the explicit and Rosenbrock tables."""
    s = len(rows)
    m = np.zeros((s, s))
    for i, row in enumerate(rows):
        if len(row) != i:
            raise ValueError(f"row {i} of a strictly lower-triangular matrix needs {i} entries")
        m[i, :i] = row
    return m


def _polys_to_dense(polys: list[np.poly1d], degree: int) -> np.ndarray:
    """Turn polynomials ``w_i(theta)`` (no constant term) into a [s, degree] coefficient matrix."""
    dense = np.zeros((len(polys), degree))
    for i, poly in enumerate(polys):
        coeffs = poly.coeffs[::-1]
        if abs(coeffs[0]) > 1e-14:
            raise ValueError("a dense-output weight polynomial must vanish at theta=0")
        dense[i, : len(coeffs) - 1] = coeffs[1:]
    return dense


EULER = ButcherTableau(
    name="euler", c=np.array([0.0]), a=np.zeros((1, 1)), b=np.array([1.0]), order=1,
    source="Euler (1768), forward Euler method",
)

MIDPOINT = ButcherTableau(
    name="midpoint", c=np.array([0.0, 0.5]), a=lower_triangle([[], [0.5]]),
    b=np.array([0.0, 1.0]), order=2,
    source="explicit midpoint rule (Runge 1895); Hairer, Norsett, Wanner, Solving ODEs I, II.1",
)

RK4 = ButcherTableau(
    name="rk4", c=np.array([0.0, 0.5, 0.5, 1.0]),
    a=lower_triangle([[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]]),
    b=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]), order=4,
    source="classical Runge-Kutta (Kutta 1901); Hairer, Norsett, Wanner, Solving ODEs I, Table 1.2",
)

# Bogacki & Shampine, "A 3(2) pair of Runge-Kutta formulas", Appl. Math. Lett. 2(4), 1989.
# Dense output: the cubic Hermite interpolant written over the stages (as in SciPy's RK23).
BOSH3 = ButcherTableau(
    name="bosh3", c=np.array([0.0, 0.5, 0.75, 1.0]),
    a=lower_triangle([[], [0.5], [0.0, 0.75], [2 / 9, 1 / 3, 4 / 9]]),
    b=np.array([2 / 9, 1 / 3, 4 / 9, 0.0]), order=3,
    b_error=np.array([5 / 72, -1 / 12, -1 / 9, 1 / 8]), error_order=2,
    dense=np.array([[1.0, -4 / 3, 5 / 9], [0.0, 1.0, -2 / 3], [0.0, 4 / 3, -8 / 9],
                    [0.0, -1.0, 1.0]]),
    source="Bogacki & Shampine, Appl. Math. Lett. 2(4):321-325, 1989",
)

# Dormand & Prince, "A family of embedded Runge-Kutta formulae", J. Comp. Appl. Math. 6(1), 1980.
# Dense output: Shampine, "Some practical Runge-Kutta formulas", Math. Comp. 46(173), 1986
# (the 4th-order continuous extension used by Hairer's DOPRI5 and SciPy's RK45).
DOPRI5 = ButcherTableau(
    name="dopri5", c=np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]),
    a=lower_triangle([
        [],
        [1 / 5],
        [3 / 40, 9 / 40],
        [44 / 45, -56 / 15, 32 / 9],
        [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
        [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
        [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
    ]),
    b=np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0]), order=5,
    b_error=np.array([71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525,
                      -1 / 40]),
    error_order=4,
    dense=np.array([
        [1.0, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 131558114200 / 32700410799, -68118460800 / 10900136933,
         87487479700 / 32700410799],
        [0.0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
        [0.0, 127303824393 / 49829197408, -318862633887 / 49829197408,
         701980252875 / 199316789632],
        [0.0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
        [0.0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
    ]),
    source="Dormand & Prince, J. Comput. Appl. Math. 6(1):19-26, 1980; dense: Shampine 1986",
)


def _tsit5_dense() -> np.ndarray:
    """The seven dense-output weight polynomials of Tsitouras (2011), Table "b_i(theta)"."""
    t = np.poly1d([1.0, 0.0])
    polys = [
        -1.0530884977290216 * t * (t - 1.3299890189751412)
        * (t**2 - 1.4364028541716351 * t + 0.7139816917074209),
        0.1017 * t**2 * (t**2 - 2.1966568338249754 * t + 1.2949852507374631),
        2.490627285651252793 * t**2 * (t**2 - 2.38535645472061657 * t + 1.57803468208092486),
        -16.54810288924490272 * (t - 1.21712927295533244) * (t - 0.61620406037800089) * t**2,
        47.37952196281928122 * (t - 1.203071208372362603) * (t - 0.658047292653547382) * t**2,
        -34.87065786149660974 * (t - 1.2) * (t - 0.666666666666666667) * t**2,
        2.5 * (t - 1) * (t - 0.6) * t**2,
    ]
    return _polys_to_dense(polys, 4)


# Tsitouras, "Runge-Kutta pairs of order 5(4) satisfying only the first column simplifying
# assumption", Comput. Math. Appl. 62(2):770-775, 2011. The error weight of the last stage is
# -1/66 (the paper's sign is wrong: SciML/OrdinaryDiffEq.jl issue 1654, diffrax issue 98).
TSIT5 = ButcherTableau(
    name="tsit5", c=np.array([0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0]),
    a=lower_triangle([
        [],
        [0.161],
        [-0.008480655492356989, 0.335480655492357],
        [2.8971530571054935, -6.359448489975075, 4.3622954328695815],
        [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
        [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401,
         -0.02826905039406838],
        [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
         2.324710524099774],
    ]),
    b=np.array([0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742,
                -3.290069515436081, 2.324710524099774, 0.0]),
    order=5,
    b_error=np.array([0.00178001105222577714, 0.0008164344596567469, -0.007880878010261995,
                      0.1447110071732629, -0.5823571654525552, 0.45808210592918697, -1 / 66]),
    error_order=4, dense=_tsit5_dense(),
    source="Tsitouras, Comput. Math. Appl. 62(2):770-775, 2011",
)

# DOP853: Hairer, Norsett & Wanner, Solving ODEs I (2nd ed.), Sec. II.10, coefficients of Hairer's
# dop853.f (transcribed digit for digit as in SciPy's integrate/_ivp/dop853_coefficients.py).
_DOP853_C = (0.0, 0.526001519587677318785587544488e-01, 0.789002279381515978178381316732e-01, 0.118350341907227396726757197510, 0.281649658092772603273242802490, 0.333333333333333333333333333333, 0.25, 0.307692307692307692307692307692, 0.651282051282051282051282051282, 0.6, 0.857142857142857142857142857142, 1.0, 1.0, 0.1, 0.2, 0.777777777777777777777777777778)
_DOP853_A = (
    (1, 0, 5.26001519587677318785587544488e-2),
    (2, 0, 1.97250569845378994544595329183e-2),
    (2, 1, 5.91751709536136983633785987549e-2),
    (3, 0, 2.95875854768068491816892993775e-2),
    (3, 2, 8.87627564304205475450678981324e-2),
    (4, 0, 2.41365134159266685502369798665e-1),
    (4, 2, -8.84549479328286085344864962717e-1),
    (4, 3, 9.24834003261792003115737966543e-1),
    (5, 0, 3.7037037037037037037037037037e-2),
    (5, 3, 1.70828608729473871279604482173e-1),
    (5, 4, 1.25467687566822425016691814123e-1),
    (6, 0, 3.7109375e-2),
    (6, 3, 1.70252211019544039314978060272e-1),
    (6, 4, 6.02165389804559606850219397283e-2),
    (6, 5, -1.7578125e-2),
    (7, 0, 3.70920001185047927108779319836e-2),
    (7, 3, 1.70383925712239993810214054705e-1),
    (7, 4, 1.07262030446373284651809199168e-1),
    (7, 5, -1.53194377486244017527936158236e-2),
    (7, 6, 8.27378916381402288758473766002e-3),
    (8, 0, 6.24110958716075717114429577812e-1),
    (8, 3, -3.36089262944694129406857109825),
    (8, 4, -8.68219346841726006818189891453e-1),
    (8, 5, 2.75920996994467083049415600797e1),
    (8, 6, 2.01540675504778934086186788979e1),
    (8, 7, -4.34898841810699588477366255144e1),
    (9, 0, 4.77662536438264365890433908527e-1),
    (9, 3, -2.48811461997166764192642586468),
    (9, 4, -5.90290826836842996371446475743e-1),
    (9, 5, 2.12300514481811942347288949897e1),
    (9, 6, 1.52792336328824235832596922938e1),
    (9, 7, -3.32882109689848629194453265587e1),
    (9, 8, -2.03312017085086261358222928593e-2),
    (10, 0, -9.3714243008598732571704021658e-1),
    (10, 3, 5.18637242884406370830023853209),
    (10, 4, 1.09143734899672957818500254654),
    (10, 5, -8.14978701074692612513997267357),
    (10, 6, -1.85200656599969598641566180701e1),
    (10, 7, 2.27394870993505042818970056734e1),
    (10, 8, 2.49360555267965238987089396762),
    (10, 9, -3.0467644718982195003823669022),
    (11, 0, 2.27331014751653820792359768449),
    (11, 3, -1.05344954667372501984066689879e1),
    (11, 4, -2.00087205822486249909675718444),
    (11, 5, -1.79589318631187989172765950534e1),
    (11, 6, 2.79488845294199600508499808837e1),
    (11, 7, -2.85899827713502369474065508674),
    (11, 8, -8.87285693353062954433549289258),
    (11, 9, 1.23605671757943030647266201528e1),
    (11, 10, 6.43392746015763530355970484046e-1),
    (12, 0, 5.42937341165687622380535766363e-2),
    (12, 5, 4.45031289275240888144113950566),
    (12, 6, 1.89151789931450038304281599044),
    (12, 7, -5.8012039600105847814672114227),
    (12, 8, 3.1116436695781989440891606237e-1),
    (12, 9, -1.52160949662516078556178806805e-1),
    (12, 10, 2.01365400804030348374776537501e-1),
    (12, 11, 4.47106157277725905176885569043e-2),
    (13, 0, 5.61675022830479523392909219681e-2),
    (13, 6, 2.53500210216624811088794765333e-1),
    (13, 7, -2.46239037470802489917441475441e-1),
    (13, 8, -1.24191423263816360469010140626e-1),
    (13, 9, 1.5329179827876569731206322685e-1),
    (13, 10, 8.20105229563468988491666602057e-3),
    (13, 11, 7.56789766054569976138603589584e-3),
    (13, 12, -8.298e-3),
    (14, 0, 3.18346481635021405060768473261e-2),
    (14, 5, 2.83009096723667755288322961402e-2),
    (14, 6, 5.35419883074385676223797384372e-2),
    (14, 7, -5.49237485713909884646569340306e-2),
    (14, 10, -1.08347328697249322858509316994e-4),
    (14, 11, 3.82571090835658412954920192323e-4),
    (14, 12, -3.40465008687404560802977114492e-4),
    (14, 13, 1.41312443674632500278074618366e-1),
    (15, 0, -4.28896301583791923408573538692e-1),
    (15, 5, -4.69762141536116384314449447206),
    (15, 6, 7.68342119606259904184240953878),
    (15, 7, 4.06898981839711007970213554331),
    (15, 8, 3.56727187455281109270669543021e-1),
    (15, 12, -1.39902416515901462129418009734e-3),
    (15, 13, 2.9475147891527723389556272149),
    (15, 14, -9.15095847217987001081870187138),
)
_DOP853_D = (
    (0, 0, -0.84289382761090128651353491142e+1),
    (0, 5, 0.56671495351937776962531783590),
    (0, 6, -0.30689499459498916912797304727e+1),
    (0, 7, 0.23846676565120698287728149680e+1),
    (0, 8, 0.21170345824450282767155149946e+1),
    (0, 9, -0.87139158377797299206789907490),
    (0, 10, 0.22404374302607882758541771650e+1),
    (0, 11, 0.63157877876946881815570249290),
    (0, 12, -0.88990336451333310820698117400e-1),
    (0, 13, 0.18148505520854727256656404962e+2),
    (0, 14, -0.91946323924783554000451984436e+1),
    (0, 15, -0.44360363875948939664310572000e+1),
    (1, 0, 0.10427508642579134603413151009e+2),
    (1, 5, 0.24228349177525818288430175319e+3),
    (1, 6, 0.16520045171727028198505394887e+3),
    (1, 7, -0.37454675472269020279518312152e+3),
    (1, 8, -0.22113666853125306036270938578e+2),
    (1, 9, 0.77334326684722638389603898808e+1),
    (1, 10, -0.30674084731089398182061213626e+2),
    (1, 11, -0.93321305264302278729567221706e+1),
    (1, 12, 0.15697238121770843886131091075e+2),
    (1, 13, -0.31139403219565177677282850411e+2),
    (1, 14, -0.93529243588444783865713862664e+1),
    (1, 15, 0.35816841486394083752465898540e+2),
    (2, 0, 0.19985053242002433820987653617e+2),
    (2, 5, -0.38703730874935176555105901742e+3),
    (2, 6, -0.18917813819516756882830838328e+3),
    (2, 7, 0.52780815920542364900561016686e+3),
    (2, 8, -0.11573902539959630126141871134e+2),
    (2, 9, 0.68812326946963000169666922661e+1),
    (2, 10, -0.10006050966910838403183860980e+1),
    (2, 11, 0.77771377980534432092869265740),
    (2, 12, -0.27782057523535084065932004339e+1),
    (2, 13, -0.60196695231264120758267380846e+2),
    (2, 14, 0.84320405506677161018159903784e+2),
    (2, 15, 0.11992291136182789328035130030e+2),
    (3, 0, -0.25693933462703749003312586129e+2),
    (3, 5, -0.15418974869023643374053993627e+3),
    (3, 6, -0.23152937917604549567536039109e+3),
    (3, 7, 0.35763911791061412378285349910e+3),
    (3, 8, 0.93405324183624310003907691704e+2),
    (3, 9, -0.37458323136451633156875139351e+2),
    (3, 10, 0.10409964950896230045147246184e+3),
    (3, 11, 0.29840293426660503123344363579e+2),
    (3, 12, -0.43533456590011143754432175058e+2),
    (3, 13, 0.96324553959188282948394950600e+2),
    (3, 14, -0.39177261675615439165231486172e+2),
    (3, 15, -0.14972683625798562581422125276e+3),
)
_DOP853_E3_SHIFT = ((0, 0.244094488188976377952755905512), (8, 0.733846688281611857341361741547), (11, 0.220588235294117647058823529412e-1))
_DOP853_E5 = ((0, 0.1312004499419488073250102996e-1), (5, -0.1225156446376204440720569753e+1), (6, -0.4957589496572501915214079952), (7, 0.1664377182454986536961530415e+1), (8, -0.3503288487499736816886487290), (9, 0.3341791187130174790297318841), (10, 0.8192320648511571246570742613e-1), (11, -0.2235530786388629525884427845e-1))


def _dop853() -> ButcherTableau:
    n_ext = len(_DOP853_C)
    a_full = np.zeros((n_ext, n_ext))
    for i, j, v in _DOP853_A:
        a_full[i, j] = v
    s = 13  # 12 stages + the FSAL stage f(t0 + h, y1), whose row of a is b
    b = np.zeros(s)
    b[:12] = a_full[12, :12]
    e5 = np.zeros(s)
    for i, v in _DOP853_E5:
        e5[i] = v
    e3 = np.zeros(s)
    e3[:12] = b[:12]
    for i, v in _DOP853_E3_SHIFT:
        e3[i] -= v
    d = np.zeros((4, n_ext))
    for i, j, v in _DOP853_D:
        d[i, j] = v
    # Hairer's 7th-order dense output, y = y0 + sum over F_j of nested products in theta and
    # (1 - theta), rewritten as weight polynomials over the 16 extended stages.
    b_ext = np.zeros(n_ext)
    b_ext[:12] = b[:12]
    unit0, unit12 = np.eye(n_ext)[0], np.eye(n_ext)[12]
    rows = [b_ext, unit0 - b_ext, 2 * b_ext - unit0 - unit12, *d]
    theta = np.poly1d([1.0, 0.0])
    one_minus = np.poly1d([-1.0, 1.0])
    polys = [np.poly1d([0.0]) for _ in range(n_ext)]
    for k, row in enumerate(reversed(rows)):
        polys = [p + r for p, r in zip(polys, row)]
        polys = [p * (theta if k % 2 == 0 else one_minus) for p in polys]
    return ButcherTableau(
        name="dop853", c=np.asarray(_DOP853_C[:s]), a=a_full[:s, :s], b=b, order=8,
        b_error=e5, error_order=7, dense=_polys_to_dense(polys, 7),
        c_extra=np.asarray(_DOP853_C[s:]), a_extra=a_full[s:, :], b_error3=e3,
        source="Hairer, Norsett, Wanner, Solving ODEs I, Sec. II.10 (dop853.f)",
    )


DOP853 = _dop853()

TABLEAUS: dict[str, ButcherTableau] = {
    t.name: t for t in (EULER, MIDPOINT, RK4, BOSH3, DOPRI5, TSIT5, DOP853)
}
