"""The container tests' image: built once per checkout (cached by a hash of its inputs), or skipped with the reason.

`HB2R_TEST_IMAGE` runs the tests against a given image instead (e.g. one built by `make image`).
"""

from __future__ import annotations

import logging
import os

import pytest

from tests.container import podman

log = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def image() -> str:
    if reason := podman.why_not_runnable():
        pytest.skip(f"container tests skipped: {reason}")
    if given := os.environ.get("HB2R_TEST_IMAGE"):
        return given
    base = podman.ensure_base()
    try:  # podman may be installed yet unable to start a container here (runtime, cgroups, rlimits)
        podman.podman("run", "--rm", base, "true", timeout=120)
    except podman.PodmanError as error:
        pytest.skip(f"container tests skipped: podman cannot run a container on this machine: {error}")
    tag, seconds = podman.ensure_image()
    log.info("container image %s ready in %.0f s", tag, seconds)
    return tag
