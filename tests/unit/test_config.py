"""``Settings`` reads the environment as pydantic-settings' ``BaseSettings`` did with its configuration.

``reliquary.config`` reads the environment itself (pydantic-settings imported asyncio and its nine sources
at every cold start). The reference here is the old class, rebuilt from ``Settings``' own fields and
validators on ``BaseSettings``: for any environment and constructor arguments, both give the same settings
or the same validation errors. One difference is deliberate: a tuple variable that is not JSON raises
``ConfigurationError`` naming the variable (``SettingsError`` before, naming the field).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from copy import copy
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError, create_model, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from reliquary.config import ENV_PREFIX, Settings
from reliquary.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[2]
FIELDS = tuple(Settings.model_fields)
ALIASES = ("AWS_REGION", "AWS_ENDPOINT_URL")
JSON_FIELDS = ("accepted_signature_algorithms", "token_previous_key_ids", "webauthn_origins")


class _Reference(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", populate_by_name=True
    )


def _reference_class() -> Any:
    """The settings class as it was: ``Settings``' fields and validators on pydantic-settings."""
    validators: Any = {
        name: model_validator(mode="after")(decorator.func)
        for name, decorator in Settings.__pydantic_decorators__.model_validators.items()
    }
    fields: Any = {name: (field.annotation, copy(field)) for name, field in Settings.model_fields.items()}
    return create_model("Settings", __base__=_Reference, __validators__=validators, **fields)


REFERENCE = _reference_class()


def _outcome(build: Any, environ: dict[str, str], given: dict[str, Any]) -> tuple[str, Any]:
    with mock.patch.dict(os.environ, environ, clear=True):
        try:
            return "settings", build(**given).model_dump()
        except ValidationError as error:
            return "invalid", [
                (e["type"], e["loc"], e["msg"], repr(e["input"])) for e in error.errors(include_url=False)
            ]
        except SettingsError as error:  # the reference: 'error parsing value for field "<name>" ...'
            found = re.search(r'field "(\w+)"', str(error))
            assert found is not None
            return "not json", found.group(1)
        except ConfigurationError as error:  # ours: "RELIQUARY_<NAME> is not JSON ..."
            return "not json", str(error).split()[0].removeprefix(ENV_PREFIX).lower()


def _spellings(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from((name, name.lower(), name.upper(), name[:1].lower() + name[1:].upper()))


_VARIABLES = st.sampled_from([*(ENV_PREFIX + f.upper() for f in FIELDS), *ALIASES, "RELIQUARY_NOPE"]).flatmap(
    _spellings
)
_TEXTS = st.sampled_from(
    [
        "",
        "null",
        "local",
        "dev",
        "prod",
        "kms",
        "eu-west-1",
        "2048",
        " 2048 ",
        "12",
        "1e1",
        "-1",
        "true",
        "a,b",
        "ML-DSA-65",
        "Ed25519",
        "did:web:vault.example",
        "https://vault.example:8443",
        '["a", "b"]',
        ' ["ML-DSA-65", "Ed25519"] ',
        '["Ed25519"]',
        '["https://vault.example"]',
        '["http://vault.example"]',
        "[1]",
        '{"a": 1}',
        '"https://vault.example"',
    ]
)
_ARGUMENTS = st.sampled_from([*FIELDS, *ALIASES, "unknown"]).flatmap(_spellings)
_VALUES = st.sampled_from(
    ["dev", "bogus", "us-west-2", "2048", 2048, 10, ("Ed25519",), ("ML-DSA-65", "Ed25519"), None, "", 30.5]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    environ=st.dictionaries(_VARIABLES, _TEXTS, max_size=6),
    arguments=st.dictionaries(_ARGUMENTS, _VALUES, max_size=3),
)
def test_any_environment_and_arguments_read_as_pydantic_settings_did(
    environ: dict[str, str], arguments: dict[str, Any]
) -> None:
    # Both exact spellings of one field: pydantic-settings keys it by either, as a set iterates.
    assume(not {"region", "AWS_REGION"} <= set(arguments))
    assume(not {"endpoint_url", "AWS_ENDPOINT_URL"} <= set(arguments))
    assert _outcome(Settings, environ, arguments) == _outcome(REFERENCE, environ, arguments)


@pytest.mark.parametrize(
    ("environ", "arguments"),
    [
        ({}, {}),
        ({"RELIQUARY_STAGE": "prod", "AWS_REGION": "eu-west-1"}, {}),
        ({"reliquary_stage": "dev"}, {}),
        ({"AWS_REGION": "eu-west-1", "RELIQUARY_REGION": "eu-west-2"}, {}),
        ({"RELIQUARY_REGION": "eu-west-2"}, {}),
        ({"AWS_REGION": "eu-west-1"}, {"region": "eu-west-3"}),
        ({"RELIQUARY_REGION": "eu-west-1"}, {"AWS_REGION": "eu-west-3"}),
        ({"RELIQUARY_STAGE": "dev"}, {"STAGE": "prod"}),
        ({"RELIQUARY_TOKEN_PREVIOUS_KEY_IDS": '["k1", "k2"]'}, {}),
        ({"RELIQUARY_TOKEN_PREVIOUS_KEY_IDS": "null"}, {}),
        ({"RELIQUARY_KMS_KEY_ID": "", "RELIQUARY_ZK_KEYS_DIR": ""}, {}),
        ({"RELIQUARY_MAX_ITEM_BYTES": "12"}, {}),
        ({"RELIQUARY_ACCEPTED_SIGNATURE_ALGORITHMS": '["Falcon-512"]'}, {}),
        ({"RELIQUARY_WEBAUTHN_ORIGINS": '["http://vault.example"]', "RELIQUARY_STAGE": "dev"}, {}),
        ({"RELIQUARY_TOKEN_ISSUER": "https://vault.example:8443"}, {}),
        ({"RELIQUARY_TOKEN_PREVIOUS_KEY_IDS": "k1,k2"}, {}),
    ],
)
def test_named_cases_read_as_pydantic_settings_did(
    environ: dict[str, str], arguments: dict[str, Any]
) -> None:
    assert _outcome(Settings, environ, arguments) == _outcome(REFERENCE, environ, arguments)


def test_the_environment_fills_what_the_arguments_leave() -> None:
    environ = {
        "RELIQUARY_STAGE": "prod",
        "AWS_REGION": "eu-west-1",
        "RELIQUARY_REGION": "ignored-when-aws-region-is-set",
        "AWS_ENDPOINT_URL": "http://localhost:5000",
        "RELIQUARY_TOKEN_PREVIOUS_KEY_IDS": '["k1", "k2"]',
        "reliquary_grant_ttl_seconds": " 60 ",
    }
    with mock.patch.dict(os.environ, environ, clear=True):
        read = Settings(stage="dev")
    assert read.stage == "dev"  # an argument wins
    assert read.region == "eu-west-1"
    assert read.endpoint_url == "http://localhost:5000"
    assert read.token_previous_key_ids == ("k1", "k2")
    assert read.grant_ttl_seconds == 60
    assert read.service_did == "did:web:reliquary.local"


def test_a_bad_value_is_a_validation_error_of_its_field() -> None:
    with (
        mock.patch.dict(os.environ, {"RELIQUARY_GRANT_TTL_SECONDS": "0"}, clear=True),
        pytest.raises(ValidationError) as raised,
    ):
        Settings()
    (error,) = raised.value.errors()
    assert (error["type"], error["loc"]) == ("greater_than_equal", ("grant_ttl_seconds",))


def test_a_list_variable_that_is_not_json_names_the_variable_never_its_value() -> None:
    secret = "k1,hunter2-pasted-by-mistake"
    with (
        mock.patch.dict(os.environ, {"RELIQUARY_TOKEN_PREVIOUS_KEY_IDS": secret}, clear=True),
        pytest.raises(ConfigurationError) as raised,
    ):
        Settings()
    assert raised.value.code == "configuration"
    assert str(raised.value).startswith("RELIQUARY_TOKEN_PREVIOUS_KEY_IDS is not JSON")
    assert "hunter2" not in str(raised.value)


def test_exactly_the_tuple_fields_are_read_as_json() -> None:
    read_as_json = set()
    for name in FIELDS:
        with mock.patch.dict(os.environ, {ENV_PREFIX + name.upper(): "["}, clear=True):
            try:
                Settings()
            except ConfigurationError:
                read_as_json.add(name)
            except ValidationError:
                pass  # "[" is no value of this field: it was read as text
    assert read_as_json == set(JSON_FIELDS)


def test_model_validate_reads_the_environment_beneath_the_mapping_as_before() -> None:
    # pydantic calls the model's own __init__ to validate a mapping (BaseSettings' did the same).
    environ = {"RELIQUARY_STAGE": "prod", "AWS_REGION": "eu-west-1", "RELIQUARY_OPERATOR_TENANT": "env"}
    mapping = {"operator_tenant": "ops"}
    with mock.patch.dict(os.environ, environ, clear=True):
        validated = Settings.model_validate(mapping)
        reference = REFERENCE.model_validate(mapping)
    assert (validated.stage, validated.region, validated.operator_tenant) == ("prod", "eu-west-1", "ops")
    assert validated.model_dump() == reference.model_dump()


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        Settings().stage = "prod"  # type: ignore[misc]


_PROBE = """
import json, sys
from reliquary.config import get_settings
get_settings()
print(json.dumps(sorted(m for m in ("pydantic_settings", "asyncio", "dotenv") if m in sys.modules)))
"""


def test_the_settings_load_without_pydantic_settings_or_asyncio() -> None:
    done = subprocess.run(  # noqa: S603  (this interpreter, a fixed probe)
        [sys.executable, "-c", _PROBE],
        cwd=REPO,
        env={"PYTHONPATH": f"{REPO}:{REPO / 'layers' / 'core'}", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []


def test_an_anchor_backend_needs_its_node() -> None:
    with pytest.raises(ValidationError, match="RELIQUARY_IPFS_API_URL"):
        Settings(audit_anchor_backend="ipfs")
    with pytest.raises(ValidationError, match="RELIQUARY_ARWEAVE_URL"):
        Settings(audit_anchor_backend="arweave", ipfs_api_url="http://127.0.0.1:5001")
    chosen = Settings(audit_anchor_backend="arweave", arweave_url="http://127.0.0.1:1984")
    assert (chosen.audit_anchor_backend, chosen.arweave_url) == ("arweave", "http://127.0.0.1:1984")
    with pytest.raises(ValidationError):
        Settings(ipfs_api_url="file:///etc/passwd")
