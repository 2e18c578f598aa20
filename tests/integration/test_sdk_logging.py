"""No secret reaches the logs through the AWS SDK: botocore logs KMS responses at DEBUG (Decrypt's
``Plaintext``), so the functions keep the SDK's loggers above DEBUG whatever the log level settings say.

Each case runs in a fresh interpreter: logging is process-wide state, and what counts is what a function's
cold start sets up (its logger, then its clients)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECRET = b"\x01kms-plaintext-that-must-stay-secret\xfe"
_PROBE = """
    import base64, json, logging, sys
    import boto3
    from moto import mock_aws

    import functions.{function}.app  # the function's cold start builds its logger
    from reliquary.adapters.clients import build_root_of_trust
    from reliquary.config import Settings

    records = []

    class Capture(logging.Handler):
        def emit(self, record):
            records.append({{"logger": record.name, "level": record.levelname, "text": record.getMessage()}})

    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    root.addHandler(Capture(logging.DEBUG))
    secret = base64.b64decode(sys.argv[1])
    context = {{"purpose": "agent-memory", "version": "1"}}
    with mock_aws():
        key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
        root_of_trust = build_root_of_trust(Settings(root_of_trust="kms", kms_key_id=key))
        blob = root_of_trust.wrap(secret, context=context)
        assert root_of_trust.unwrap(blob, context=context) == secret
        # Someone turns the SDK's own DEBUG logging on after the clients were built.
        boto3.set_stream_logger("botocore", logging.DEBUG)
        logging.getLogger("botocore.parsers").setLevel(logging.DEBUG)
        assert root_of_trust.unwrap(blob, context=context) == secret
    print(json.dumps(records))
"""


def _run(function: str) -> tuple[list[dict[str, str]], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "RELIQUARY_"))}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in (".", "layers/core", "layers/native")),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "POWERTOOLS_LOG_LEVEL": "DEBUG",
            "LOG_LEVEL": "DEBUG",
            "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
        }
    )
    done = subprocess.run(  # noqa: S603  (this interpreter, a fixed probe)
        [sys.executable, "-c", textwrap.dedent(_PROBE.format(function=function)), base64.b64encode(SECRET)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records: list[dict[str, str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return records, done.stdout + done.stderr


@pytest.mark.parametrize("function", ["encrypt", "agent_vote"])
def test_a_kms_decrypt_logs_no_plaintext_whatever_the_log_level(function: str) -> None:
    records, output = _run(function)
    assert records, "the probe captured nothing: the capture itself is broken"
    everything = json.dumps(records) + output
    for form in (base64.b64encode(SECRET).decode(), SECRET[1:-1].decode()):
        assert form not in everything
    sdk = [r for r in records if r["logger"].split(".")[0] in {"botocore", "boto3", "urllib3", "s3transfer"}]
    assert sdk, "the SDK logged nothing at all: the probe does not exercise it"
    assert {r["level"] for r in sdk} <= {"INFO", "WARNING", "ERROR", "CRITICAL"}, sdk
