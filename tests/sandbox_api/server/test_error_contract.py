"""Every error the packages can raise has a stable code with an explicit HTTP status, and belongs to its
package's one family: a new error class that nobody mapped fails here instead of answering 500."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import pytest

import crypto
import executors
import policies
import sandbox_api
from crypto.errors import CryptoError
from executors.errors import ExecutionError
from policies.errors import PolicyError
from sandbox_api.errors import ServiceError
from sandbox_api.server.problems import STATUS

FAMILIES: dict[str, type[Exception]] = {
    "crypto": CryptoError,
    "policies": PolicyError,
    "executors": ExecutionError,
    "sandbox_api": ServiceError,
}

# Modules that start a cluster or a server when imported are not needed to find the error classes.
SKIPPED_MODULES = ("executors.ray_executor", "executors.fork_server_preload")


def _import_all() -> None:
    for package in (crypto, policies, executors, sandbox_api):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            # A ``__main__`` module runs its program when imported; it defines no errors.
            if (
                not module.name.startswith(SKIPPED_MODULES)
                and ".migrations." not in module.name
                and not module.name.endswith(".__main__")
            ):
                importlib.import_module(module.name)


def _our_error_classes() -> Iterator[type[Exception]]:
    _import_all()
    seen: set[type[Exception]] = set()
    stack: list[type[Exception]] = [Exception]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub in seen:
                continue
            seen.add(sub)
            stack.append(sub)
            if sub.__module__.split(".")[0] in FAMILIES and "code" in vars(sub):
                yield sub


ERRORS = sorted(_our_error_classes(), key=lambda c: f"{c.__module__}.{c.__qualname__}")


def test_the_walk_finds_every_family() -> None:
    assert {c.__module__.split(".")[0] for c in ERRORS} == set(FAMILIES)
    assert len(ERRORS) > 40


@pytest.mark.parametrize("error", ERRORS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_error_code_has_an_http_status(error: type[Exception]) -> None:
    code = vars(error)["code"]
    assert code in STATUS, (
        f"{error.__qualname__} has code {code!r} with no status in sandbox_api/server/problems.py"
    )


@pytest.mark.parametrize("error", ERRORS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_error_belongs_to_its_packages_family(error: type[Exception]) -> None:
    family = FAMILIES[error.__module__.split(".")[0]]
    assert issubclass(error, family), f"{error.__qualname__} is not a {family.__name__}"
