"""Fixtures for tests that need a Docker Engine and the sandbox image.

Where no engine answers the tests skip with the reason, except in CI (env CI=true), where
they FAIL: CI must run them against a real daemon (.ci/run starts one).
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(ok: bool, why: str) -> None:
    if ok:
        return
    if in_ci():
        pytest.fail(f"CI=true but {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """The engine's version; skips (fails in CI) when no engine is reachable."""
    from trialrun.sandbox.docker_backend import docker_available

    ok, info = docker_available()
    need(ok, f"Docker engine unavailable: {info}")
    return info


@pytest.fixture(scope="session")
def sandbox_image(docker_engine: str) -> str:
    """The base sandbox image, built here if missing (about 40 s with debootstrap)."""
    from trialrun.sandbox.backend import SandboxFault
    from trialrun.sandbox.image import build_base_image, default_image, image_exists

    tag = default_image()
    if not image_exists(tag):
        try:
            build_base_image(log=lambda _m: None)
        except SandboxFault as e:
            need(False, f"sandbox image {tag} missing and could not be built: {e}")
    return tag


def trialrun_containers(**labels: str) -> list:
    from trialrun.sandbox.docker_backend import LABEL, client

    filters = [LABEL] + [f"trialrun.{k}={v}" for k, v in labels.items()]
    return client().containers.list(all=True, filters={"label": filters})
