"""The `reliquary` command in process (typer's CliRunner): usage errors, files, profiles, the local-only
reset, completion, the zk build's progress, and secrets never printed. No API is reached."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from reliquary_sdk.cli import app
from reliquary_sdk.cli.local import install_profiles
from reliquary_sdk.cli.profiles import ConfigFile, Profile
from reliquary_sdk.cli.templates import builtins, parse
from reliquary_sdk.cli.zkbuild import BuildProgress, total_steps
from typer.testing import CliRunner

from reliquary.agents.policy import QuorumPolicy
from reliquary.trust.policy import TrustPolicy

SECRET = "rqs_" + "s3cr3t" * 7


@pytest.fixture(autouse=True)
def homes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("RELIQUARY_URL", "RELIQUARY_PROFILE", "RELIQUARY_CLIENT_ID", "RELIQUARY_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def invoke(*args: str, **env: str) -> Any:
    return CliRunner().invoke(app, list(args), env=env or None)


def error_of(result: Any) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    return error


def test_no_url_is_a_usage_error_with_what_to_do() -> None:
    result = invoke("--json", "health")
    assert result.exit_code == 1
    assert error_of(result) == {
        "code": "usage",
        "exit_code": 1,
        "message": "no API URL",
        "hint": "pass --url, set RELIQUARY_URL, or add a profile (`reliquary profile set`)",
    }
    assert result.stdout == ""


def test_an_unknown_option_is_exit_1_not_clicks_2() -> None:
    result = invoke("health", "--bogus")
    assert result.exit_code == 1
    assert "No such option" in result.stderr
    assert "Traceback" not in result.stderr


def test_plain_http_is_refused_off_this_machine() -> None:
    result = invoke("--json", "--url", "http://vault.example.com", "health")
    assert result.exit_code == 1
    assert "use https" in error_of(result)["message"]


def test_credentials_need_both_halves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELIQUARY_CLIENT_ID", "cl-1")
    result = invoke("--json", "--url", "http://127.0.0.1:9", "client", "list")
    assert result.exit_code == 1
    assert (
        error_of(result)["message"] == "set both RELIQUARY_CLIENT_ID and RELIQUARY_CLIENT_SECRET, or neither"
    )


def test_a_bad_role_is_refused_before_anything_is_sent() -> None:
    env = {"RELIQUARY_CLIENT_ID": "cl-1", "RELIQUARY_CLIENT_SECRET": SECRET}
    result = invoke("--json", "--url", "http://127.0.0.1:9", "client", "create", "x", "--role", "root", **env)
    assert result.exit_code == 1  # not 4: nothing tried to reach 127.0.0.1:9
    assert error_of(result)["message"].startswith("a role is one of tenant-admin, vault-admin")


def test_profiles_are_written_0600_and_never_print_their_secret(homes: Path) -> None:
    result = invoke("profile", "set", "work", "--url", "https://vault.example.com", "--client-id", "cl-9",
                    RELIQUARY_CLIENT_SECRET=SECRET)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    config = homes / "config" / "reliquary" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert json.loads(config.read_text())["profiles"]["work"]["client_secret"] == SECRET
    for args in (("profile", "list"), ("--json", "profile", "list")):
        shown = invoke(*args)
        assert shown.exit_code == 0
        assert SECRET not in shown.stdout + shown.stderr
    listed = json.loads(invoke("--json", "profile", "list").stdout)
    assert listed["profiles"][0]["client_secret"] == "set"
    assert listed["default"] == "work"


def test_an_unknown_profile_and_a_foreign_config_file_are_refused(homes: Path) -> None:
    assert error_of(invoke("--json", "--profile", "nope", "health"))["message"] == "no such profile"
    config = homes / "config" / "reliquary" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text('{"something": "else"}')
    result = invoke("--json", "profile", "set", "x", "--url", "https://a.example")
    assert result.exit_code == 1
    assert "refusing to overwrite it" in error_of(result)["message"]
    assert config.read_text() == '{"something": "else"}'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "the template is not JSON (or repeats a member)"),
        ('{"format": "reliquary-vault-template/v1", "name": "a", "name": "b", "policies": {}}',
         "the template is not JSON (or repeats a member)"),
        ('{"format": "other", "name": "a", "policies": {"trust": {}}}',
         "the template's format must be reliquary-vault-template/v1"),
        ('{"format": "reliquary-vault-template/v1", "name": "a", "policies": {"ledger": {"x": 1}}}',
         "the template's policies are an object of context, trust and quorum"),
        (('{"format": "reliquary-vault-template/v1", "name": "a", "policies": {"trust": {"template": "x"}},'
         ' "extra": 1}'), "the template has unknown members"),
        (('{"format": "reliquary-vault-template/v1", "name": "a", "policies": {"trust": {"template": "x"}},'
         ' "vault": {"recovery_threshold": 0}}'), "recovery_threshold is a positive integer"),
    ],
)  # fmt: skip
def test_a_bad_template_file_is_refused_before_the_vault_is_created(
    homes: Path, content: str, message: str
) -> None:
    template = homes / "t.json"
    template.write_text(content)
    env = {"RELIQUARY_CLIENT_ID": "cl-1", "RELIQUARY_CLIENT_SECRET": SECRET}
    result = invoke(
        "--json", "--url", "http://127.0.0.1:9", "vault", "create", "v", "-t", str(template), **env
    )
    assert result.exit_code == 1, result.stderr
    assert error_of(result)["message"] == message


def test_an_unknown_template_names_the_built_ins() -> None:
    error = error_of(invoke("--json", "vault", "templates", "--show", "nope"))
    assert error["message"] == "no built-in template of that name and no such file"
    assert error["hint"] == "built-ins: human-approved, research, standard, strict"


@pytest.mark.parametrize("template", builtins(), ids=lambda t: t.name)
def test_the_built_in_templates_are_policies_the_service_accepts(template: Any) -> None:
    """Differential: each built-in policy validates with the enforcing functions' own models."""
    TrustPolicy.model_validate(template.policies["trust"])
    QuorumPolicy.model_validate(template.policies["quorum"])
    text = json.dumps(
        {"format": "reliquary-vault-template/v1", "name": template.name, "policies": template.policies}
    )
    assert parse(text, source="x").policies == template.policies


def test_a_bad_jsonl_line_is_named_and_nothing_is_sent(homes: Path) -> None:
    jsonl = homes / "m.jsonl"
    jsonl.write_text('{"text": "a", "user_id": "u"}\n{"text": "b", "user_id": "u", "secret": 1}\n')
    env = {"RELIQUARY_CLIENT_ID": "cl-1", "RELIQUARY_CLIENT_SECRET": SECRET}
    result = invoke(
        "--json", "--url", "http://127.0.0.1:9", "memories", "add", "v", "--file", str(jsonl), **env
    )
    assert result.exit_code == 1  # the whole file is checked before the first request (which would be exit 4)
    assert error_of(result)["message"] == "line 2: unknown members"


def test_memories_add_needs_exactly_one_owner() -> None:
    env = {"RELIQUARY_CLIENT_ID": "cl-1", "RELIQUARY_CLIENT_SECRET": SECRET}
    result = invoke("--json", "--url", "http://127.0.0.1:9", "memories", "add", "v", "hello", **env)
    assert error_of(result)["message"] == "give exactly one of --user-id, --agent-id, --run-id"


def test_reset_refuses_anything_but_the_dev_runtimes_loopback_profile(homes: Path) -> None:
    config = ConfigFile()
    config.put(Profile(name="prod", url="https://vault.example.com", client_id="cl-1", client_secret=SECRET))
    assert (
        error_of(invoke("--json", "reset"))["message"] == "reset only resets the local runtime: pass --local"
    )
    refused = invoke("--json", "--profile", "prod", "reset", "--local")
    assert refused.exit_code == 1
    assert error_of(refused)["message"] == "refusing: this profile was not written by `reliquary dev`"
    # A dev-marked profile pointed elsewhere (edited by hand) is refused too.
    config.put(Profile(name="odd", url="https://vault.example.com", dev=True))
    assert error_of(invoke("--json", "--profile", "odd", "reset", "--local"))["message"] == (
        "refusing: the profile's URL is not this machine's"
    )
    assert set(config.profiles()) == {"prod", "odd"}


def test_reset_forgets_the_dev_profiles_and_the_local_checkpoints_only(homes: Path) -> None:
    config = ConfigFile()
    config.put(Profile(name="prod", url="https://vault.example.com"))
    data = {
        "format": "reliquary-local-profile/v1",
        "url": "http://127.0.0.1:3000",
        "tenant_admin": {"client_id": "cl-a", "client_secret": SECRET},
        "operator": {"client_id": "cl-o", "client_secret": SECRET + "o"},
    }
    assert install_profiles(config, data) == ["local", "local-operator"]
    state = homes / "state" / "reliquary"
    state.mkdir(parents=True)
    (state / "checkpoints-local.json").write_text("{}")
    (state / "checkpoints.json").write_text("{}")
    result = invoke("--json", "--profile", "local", "reset", "--local")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "stopped": False,
        "profiles_removed": ["local", "local-operator"],
        "checkpoints_forgotten": True,
    }
    assert set(config.profiles()) == {"prod"}
    assert not (state / "checkpoints-local.json").exists()
    assert (state / "checkpoints.json").exists()  # other deployments' memory is kept


def test_dev_outside_a_checkout_says_how_to_find_one(homes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(homes)
    monkeypatch.delenv("RELIQUARY_HOME", raising=False)
    error = error_of(invoke("--json", "dev"))
    assert error["message"] == "no RELIQUARY checkout found (a directory with infra/local)"
    assert "--checkout" in error["hint"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_shells_script(shell: str) -> None:
    result = invoke("completion", shell)
    assert result.exit_code == 0
    assert "_RELIQUARY_COMPLETE" in result.stdout
    assert "reliquary" in result.stdout
    assert f"complete_{shell}" in result.stdout


def test_completion_refuses_an_unknown_shell() -> None:
    assert error_of(invoke("--json", "completion", "tcsh"))["message"] == "the shell is bash, zsh or fish"


def test_completion_completes_commands() -> None:
    env = {"_RELIQUARY_COMPLETE": "complete_bash", "COMP_WORDS": "reliquary memo", "COMP_CWORD": "1"}
    result = CliRunner().invoke(app, [], env=env, prog_name="reliquary")
    assert result.stdout.split() == ["memories"]


# Lines as zk/scripts/build.mjs prints them (its `say`: `[${elapsed padded to 6}s] text`), with the tool
# output and snarkjs progress lines between the steps that the parser must skip.
BUILD_OUTPUT = """\
[   0.0s] tools: {"node":"v20.19.2","circom2":"circom compiler 2.2.2","snarkjs":"0.7.6"}
[   0.0s] == compile ==
[   0.0s] compile [device_proof]
           template instances: 75
           non-linear constraints: 1524
[   2.1s]   done in 2.1s
[   2.1s] compile [location_chain]
[   5.9s]   done in 3.8s
[   5.9s] == powers of tau: bn128, power 13 (2^13 = 8192 >= 5203 rows) ==
[   5.9s] powersoftau new
[   6.3s]   done in 0.4s
[   6.3s] powersoftau contribute
[   8.4s]     contribute: tauG1: 4096/16383
[  12.0s]   done in 5.7s
[  12.0s] == groth16 keys: device_proof ==
[  12.0s] groth16 setup [device_proof]
           [INFO]  snarkJS: Circuit hash:
           \t\t3c2c1ab2 51b05b0e 5a9a8a6c 32e3d0e5
[  14.2s]   done in 2.2s
[  14.2s] zkey verify [device_proof]
           [INFO]  snarkJS: ZKey Ok!
[  16.0s]   done in 1.8s
[  16.0s] == examples ==
[  16.0s] example inputs
[  16.3s]   done in 0.3s
[  16.3s] example proof [device_proof]
[  17.1s]   done in 0.8s
"""


def test_the_zk_build_progress_follows_the_build_scripts_lines() -> None:
    progress = BuildProgress()
    finished = [f for line in BUILD_OUTPUT.splitlines(keepends=True) if (f := progress.feed(line))]
    assert finished == [
        ("compile", "device_proof"),
        ("compile", "location_chain"),
        ("powersoftau new", "ceremony"),
        ("powersoftau contribute", "ceremony"),
        ("groth16 setup", "device_proof"),
        ("zkey verify", "device_proof"),
        ("example inputs", "ceremony"),
        ("example proof", "device_proof"),
    ]
    assert progress.done["device_proof"] == 4
    assert progress.done["location_chain"] == 1
    assert progress.done["context_proof"] == 0
    assert progress.section == "examples"
    assert total_steps() == {**dict.fromkeys(progress.done, 8), "ceremony": 5}
    assert sum(total_steps().values()) == 45  # ceremony/transcript.json's full build: 45 steps
    assert total_steps(reuse_ptau=True)["ceremony"] == 2


def test_the_zk_build_totals_match_the_committed_transcript() -> None:
    transcript = json.loads((Path(__file__).resolve().parents[2] / "zk/ceremony/transcript.json").read_text())
    steps = [(s["step"], s.get("circuit", "ceremony")) for s in transcript["steps"]]
    expected = total_steps()
    assert len(steps) == sum(expected.values())
    for part, count in expected.items():
        assert sum(1 for _, c in steps if c == part) == count


def test_exit_codes_are_listed() -> None:
    listed = json.loads(invoke("--json", "exit-codes").stdout)
    assert listed == {
        "0": "success",
        "1": "usage: a bad option, argument, file or profile (nothing was sent)",
        "2": "the API refused the request",
        "3": "verification failed: a checkpoint, proof, receipt or grant, or the log forked",
        "4": "unavailable: no answer, a server error, rate limited, or a missing tool",
        "130": "interrupted (Ctrl-C)",
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--permanent", "ipfs"], ("bodies on ipfs can never be deleted, only crypto-shredded: "
         "add --acknowledge-permanence to opt in")),
        (["--permanent", "s3", "--acknowledge-permanence"], "--permanent is ipfs or arweave"),
    ],
)  # fmt: skip
def test_permanent_storage_is_refused_unacknowledged_before_anything_is_sent(
    options: list[str], message: str
) -> None:
    env = {"RELIQUARY_CLIENT_ID": "cl-1", "RELIQUARY_CLIENT_SECRET": SECRET}
    # The URL answers nothing: a refusal here is the CLI's own, before any request.
    result = invoke(
        "--json", "--url", "http://127.0.0.1:9", "vault", "create", "v", "-t", "standard", *options, **env
    )
    assert result.exit_code == 1, result.stderr
    assert error_of(result)["message"] == message
