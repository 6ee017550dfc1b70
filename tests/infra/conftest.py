"""The AWS stack synthesised once per worker for every test in tests/infra that reads it.

Session scope: a module fixture is rebuilt whenever xdist interleaves another module's tests;
the modules that use these mark themselves `xdist_group("infra-aws")`, so one worker builds each.
"""

from __future__ import annotations

import pytest
from support.cdk_template import CONFIGURED, PRIVATE, Synth


@pytest.fixture(scope="session")
def default(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return Synth(tmp_path_factory.mktemp("cdk-default"))


@pytest.fixture(scope="session")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return Synth(tmp_path_factory.mktemp("cdk-configured"), context=CONFIGURED)


@pytest.fixture(scope="session")
def private(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return Synth(tmp_path_factory.mktemp("cdk-private"), context=PRIVATE)
