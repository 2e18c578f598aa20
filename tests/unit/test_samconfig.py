"""samconfig.toml's deploy profiles match the template: each profile deploys its own stack with its own
stage, validation lints, and production asks before it changes anything."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from infra.template import REPO_ROOT, load_template

PROFILES = {"default": "dev", "dev": "dev", "prod": "prod"}


@pytest.fixture(scope="module")
def samconfig() -> dict[str, Any]:
    with (REPO_ROOT / "samconfig.toml").open("rb") as stream:
        return tomllib.load(stream)


@pytest.mark.parametrize(("profile", "stage"), PROFILES.items())
def test_each_profile_deploys_its_own_stage(samconfig: dict[str, Any], profile: str, stage: str) -> None:
    config = samconfig[profile]
    assert config["global"]["parameters"]["stack_name"] == f"reliquary-{stage}"
    deploy = config["deploy"]["parameters"]
    assert deploy["parameter_overrides"] == f"Stage={stage}"
    assert stage in load_template()["Parameters"]["Stage"]["AllowedValues"]
    assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert deploy["s3_prefix"] == f"reliquary-{stage}"
    assert config["validate"]["parameters"]["lint"] is True


def test_production_asks_before_it_changes_anything(samconfig: dict[str, Any]) -> None:
    assert samconfig["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
    assert samconfig["dev"]["deploy"]["parameters"]["confirm_changeset"] is False
