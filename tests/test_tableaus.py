"""Every tableau satisfies Butcher's order conditions up to its order, to 1e-12 (rooted trees)."""

from __future__ import annotations

import dataclasses
from functools import cache
from math import prod

import numpy as np
import pytest

from odebench.solvers.tableaus import TABLEAUS, ButcherTableau


@cache
def trees(order: int) -> tuple[tuple, ...]:
    """All rooted trees with ``order`` nodes; a tree is the sorted tuple of its children."""
    if order == 1:
        return ((),)
    result: set[tuple] = set()

    def forests(remaining: int, max_child: tuple | None) -> list[tuple]:
        if remaining == 0:
            return [()]
        out = []
        for size in range(1, remaining + 1):
            for child in trees(size):
                key = (size, child)
                if max_child is not None and key > max_child:
                    continue
                for rest in forests(remaining - size, key):
                    out.append((key, *rest))
        return out

    for forest in forests(order - 1, None):
        result.add(tuple(sorted(child for _, child in forest)))
    return tuple(sorted(result))


def size(tree: tuple) -> int:
    return 1 + sum(size(c) for c in tree)


def gamma(tree: tuple) -> int:
    return size(tree) * prod(gamma(c) for c in tree)


def g(tree: tuple, a: np.ndarray) -> np.ndarray:
    """Stage vector of the elementary weight: product over children of A @ g(child)."""
    out = np.ones(a.shape[0])
    for child in tree:
        out = out * (a @ g(child, a))
    return out


def test_tree_counts():
    assert [len(trees(n)) for n in range(1, 9)] == [1, 1, 2, 4, 9, 20, 48, 115]


def _max_violation(weights: np.ndarray, a: np.ndarray, order: int) -> float:
    return max(abs(weights @ g(t, a) - 1.0 / gamma(t))
               for p in range(1, order + 1) for t in trees(p))


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_order_conditions(name: str):
    tab: ButcherTableau = TABLEAUS[name]
    assert np.allclose(tab.a.sum(axis=1), tab.c, atol=1e-14)
    assert _max_violation(tab.b, tab.a, tab.order) < 1e-12
    # and the order is not higher than claimed (the first unmet condition exists)
    assert _max_violation(tab.b, tab.a, tab.order + 1) > 1e-8


EMBEDDED_ORDER = {"bosh3": 2, "dopri5": 4, "tsit5": 4}


@pytest.mark.parametrize("name", list(EMBEDDED_ORDER))
def test_embedded_order(name: str):
    tab = TABLEAUS[name]
    b_hat = tab.b - tab.b_error
    assert _max_violation(b_hat, tab.a, EMBEDDED_ORDER[name]) < 1e-12


def test_dop853_error_estimators():
    """E5 (DOP853's 5th-order estimator) vanishes on trees up to order 5, E3 up to order 3."""
    tab = TABLEAUS["dop853"]
    for weights, order in ((tab.b_error, 5), (tab.b_error3, 3)):
        worst = max(abs(weights @ g(t, tab.a)) for p in range(1, order + 1) for t in trees(p))
        assert worst < 1e-12


DENSE_ORDER = {"bosh3": 3, "dopri5": 4, "tsit5": 4, "dop853": 7}


@pytest.mark.parametrize("name", list(DENSE_ORDER))
def test_dense_output_order_conditions(name: str):
    """The continuous extension satisfies w(theta)·Phi(tree) = theta^|tree| / gamma(tree)."""
    tab = TABLEAUS[name]
    s_dense = tab.dense.shape[0]
    a = np.zeros((s_dense, s_dense))
    a[: tab.stages, : tab.stages] = tab.a
    for i, row in enumerate(tab.a_extra):
        a[tab.stages + i, : len(row)] = row[: s_dense]
    for theta in (0.3, 0.75, 1.0):
        w = tab.dense @ theta ** np.arange(1, tab.dense.shape[1] + 1)
        worst = max(abs(w @ g(t, a) - theta ** size(t) / gamma(t))
                    for p in range(1, DENSE_ORDER[name] + 1) for t in trees(p))
        assert worst < 1e-11, (theta, worst)


def test_registry_names_every_table_and_class_once():
    """The method names of the registry are exactly the tables and method classes that exist,
    each registered once, and every tableau's name is its key."""
    from odebench.solvers import METHOD_CLASSES
    from odebench.solvers.registry import EXPLICIT_METHODS, METHODS, STIFF_METHODS
    from odebench.solvers.rosenbrock_tableaus import ROSENBROCK_TABLEAUS

    assert len(set(METHODS)) == len(METHODS)
    assert set(EXPLICIT_METHODS) == set(TABLEAUS)
    assert set(STIFF_METHODS) == set(ROSENBROCK_TABLEAUS) | set(METHOD_CLASSES)
    assert all(t.name == k for k, t in {**TABLEAUS, **ROSENBROCK_TABLEAUS}.items())


def test_tableau_refuses_an_inconsistent_table():
    """Row sums of a must equal c, and FSAL is derived from the table, not declared."""
    good = TABLEAUS["bosh3"]
    with pytest.raises(ValueError, match="row sums"):
        dataclasses.replace(good, c=good.c + np.array([0.0, 0.1, 0.0, 0.0]))
    with pytest.raises(ValueError, match="shape"):
        dataclasses.replace(good, b=good.b[:3])
    assert good.fsal and not TABLEAUS["rk4"].fsal
