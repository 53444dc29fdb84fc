"""The one place where differential-privacy noise is drawn: OpenDP measurements invoked on their input.

``policies.dp`` builds the measurements (pure: scales checked against their privacy maps) and takes this
function as its ``sample`` argument, so that the policy engine never draws randomness itself. OpenDP
draws from the operating system's CSPRNG; its samplers cannot be seeded (see ``policies.dp.noise`` on
replay).
"""

from __future__ import annotations

from typing import Any

from opendp.mod import Measurement


def draw(measurement: Measurement, data: Any) -> Any:
    """Invoke ``measurement`` on ``data`` (one draw of its noise).

    >>> import opendp.prelude as odp
    >>> odp.enable_features("contrib")
    >>> exact = odp.m.make_laplace(odp.atom_domain(T=int), odp.absolute_distance(T=int), scale=1e-9)
    >>> draw(exact, 41)    # a tiny scale: the draw is (almost surely) the input
    41
    """
    return measurement(data)
