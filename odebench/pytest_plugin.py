"""pytest plugin (entry point ``pytest11: odebench``): gradient checks of your neural ODE as tests.

The fixture ``ode_gradcheck`` is :func:`odebench.testing.assert_gradients_close`::

    def test_my_ode_gradients(ode_gradcheck):
        func, y0, t = make_my_ode()
        ode_gradcheck(func, y0, t, method="dopri5", gradient="backsolve", rtol=1e-6)

A breach fails the test with the report (worst tensor, its error, the table) as the message.

The marker ``ode_gradcheck`` is added to every test that uses the fixture, so
``pytest -m ode_gradcheck`` runs only these checks and ``-m "not ode_gradcheck"`` skips them.
Its keyword arguments, when written explicitly, are defaults of the fixture's call
(``@pytest.mark.ode_gradcheck(rtol=1e-5, budget=1e-3)``); the call's own arguments win.

This module loads in every pytest session where odebench is installed, so it imports neither
torch nor odebench.testing until a test asks for the fixture.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

MARKER = "ode_gradcheck"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker (``pytest --markers`` lists it)."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**settings): a gradient check of a neural ODE by odebench "
        "(added to tests using the ode_gradcheck fixture); keyword arguments are defaults of "
        "the fixture's call (method, gradient, rtol, atol, loss, reference, budget, options)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that requests the ``ode_gradcheck`` fixture."""
    for item in items:
        if MARKER in getattr(item, "fixturenames", ()) and item.get_closest_marker(MARKER) is None:
            item.add_marker(MARKER)


@pytest.fixture
def ode_gradcheck(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``assert_gradients_close(func, y0, t, **settings)`` with the marker's keyword arguments
    as defaults; returns the :class:`odebench.testing.GradientReport` when the check passes."""
    from odebench.testing import assert_gradients_close

    marker = request.node.get_closest_marker(MARKER)
    defaults = dict(marker.kwargs) if marker is not None else {}
    return functools.partial(assert_gradients_close, **defaults)
