"""Dependencies point one way: functions -> actions / handlers -> contracts -> the domain packages; only
adapters touch boto3 or pynamodb. Checked on every import statement of the core, by reading the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "layers" / "core" / "reliquary"
# What only functions (and each other) may import: the API is the API function's application layer.
APPLICATION = {"actions", "api", "contracts", "handlers"}
AWS_LIBRARIES = ("boto3", "botocore", "pynamodb")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _package(path: Path) -> str:
    return path.relative_to(CORE).parts[0].removesuffix(".py")


MODULES = sorted(CORE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(CORE)))
def test_the_domain_never_imports_a_contract_or_an_action(path: Path) -> None:
    if _package(path) in APPLICATION:
        return
    upward = {m for m in _imports(path) if m.split(".")[:2] in (["reliquary", a] for a in APPLICATION)}
    assert not upward, f"{path.relative_to(CORE)} imports {sorted(upward)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(CORE)))
def test_only_adapters_touch_the_aws_libraries(path: Path) -> None:
    if _package(path) == "adapters":
        return
    aws = {m for m in _imports(path) if m.split(".")[0] in AWS_LIBRARIES}
    # powertools' Logger and Metrics are observability, not data access: handlers and observability use them.
    assert not aws, f"{path.relative_to(CORE)} imports {sorted(aws)}"


def test_the_scan_sees_the_packages() -> None:
    assert {"flow", "vaults", "audit", "contracts", "actions", "adapters"} <= {_package(p) for p in MODULES}
