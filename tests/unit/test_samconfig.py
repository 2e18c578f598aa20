"""samconfig.toml's deploy profiles match the template: each profile deploys its own stack with its own
stage and API limits (values the template accepts), validation lints, production asks before it changes
anything, and no profile pins the token key rotation."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from infra.template import REPO_ROOT, load_template

PROFILES = {"default": "dev", "dev": "dev", "prod": "prod"}
API_LIMITS = {"ApiThrottleRateLimit", "ApiThrottleBurstLimit", "ApiQuotaPerDay", "ClientRequestsPerSecond"}


def overrides(config: dict[str, Any]) -> dict[str, str]:
    """``parameter_overrides`` ("Key=Value Key=Value") as a mapping."""
    pairs = config["deploy"]["parameters"]["parameter_overrides"].split()
    return {key: value for key, _, value in (pair.partition("=") for pair in pairs)}


@pytest.fixture(scope="module")
def samconfig() -> dict[str, Any]:
    with (REPO_ROOT / "samconfig.toml").open("rb") as stream:
        return tomllib.load(stream)


@pytest.mark.parametrize(("profile", "stage"), PROFILES.items())
def test_each_profile_deploys_its_own_stage(samconfig: dict[str, Any], profile: str, stage: str) -> None:
    config = samconfig[profile]
    assert config["global"]["parameters"]["stack_name"] == f"reliquary-{stage}"
    deploy = config["deploy"]["parameters"]
    assert overrides(config)["Stage"] == stage
    assert stage in load_template()["Parameters"]["Stage"]["AllowedValues"]
    assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert deploy["s3_prefix"] == f"reliquary-{stage}"
    assert config["validate"]["parameters"]["lint"] is True


def test_production_asks_before_it_changes_anything(samconfig: dict[str, Any]) -> None:
    assert samconfig["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
    assert samconfig["dev"]["deploy"]["parameters"]["confirm_changeset"] is False


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_sets_the_api_limits_within_the_templates_bounds(
    samconfig: dict[str, Any], profile: str
) -> None:
    parameters = load_template()["Parameters"]
    given = overrides(samconfig[profile])
    assert set(given) == {"Stage", *API_LIMITS}
    for name in API_LIMITS:
        value, spec = int(given[name]), parameters[name]
        assert spec["Type"] == "Number"
        assert spec.get("MinValue", 0) <= value <= spec.get("MaxValue", value), name
    # A burst below the steady rate would throttle a steady caller.
    assert int(given["ApiThrottleBurstLimit"]) >= int(given["ApiThrottleRateLimit"])
    # The per-client budget fits in the stage's rate: one client cannot take the whole stage.
    assert int(given["ClientRequestsPerSecond"]) < int(given["ApiThrottleRateLimit"])


def test_production_allows_more_than_development(samconfig: dict[str, Any]) -> None:
    dev, prod = overrides(samconfig["dev"]), overrides(samconfig["prod"])
    assert overrides(samconfig["default"]) == dev
    assert all(int(prod[name]) >= int(dev[name]) for name in API_LIMITS)


def test_no_profile_pins_the_token_keys(samconfig: dict[str, Any]) -> None:
    """A parameter `sam deploy` is not given keeps its last value: a rotation survives ordinary deploys."""
    for profile in PROFILES:
        assert not {"TokenSigningKey", "TokenStandbyKey"} & set(overrides(samconfig[profile])), profile
