"""What each Lambda function deploys, read offline from template.yaml and the requirements files: every set is
pinned as in requirements.lock and closed under its dependencies, nothing is carried twice, each handler's
imports are there, the heavy libraries stay in the one function that runs them, and each fits Lambda."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from infra.template import REPO_ROOT, load_template
from tests.bench import run, sizes_bench
from tests.bench.sizes_bench import canonical, function_packages, read_pins

PACKAGES = {p.logical_id: p for p in function_packages()}
# The distributions only one function may carry (and where): LangGraph and what only it needs, the API's
# web stack, MCL (Groth16 verification). A forbidden package arriving elsewhere fails here.
ONLY_IN = {
    "langgraph": "AgentVoteFunction",
    "langgraph-checkpoint": "AgentVoteFunction",
    "langgraph-prebuilt": "AgentVoteFunction",
    "langgraph-sdk": "AgentVoteFunction",
    "langchain-core": "AgentVoteFunction",
    "langsmith": "AgentVoteFunction",
    "zstandard": "AgentVoteFunction",
    "websockets": "AgentVoteFunction",
    "fastapi": "ApiFunction",
    "starlette": "ApiFunction",
    "mangum": "ApiFunction",
    "python-jose": "ApiFunction",
    "mclbn256": "VerifyProofFunction",
}
# Where the NativeLayer (liboqs, the Merkle library) is used: vault keys and stage signatures, the log's
# tiles and checkpoint signatures, the API's checkpoint verification.
NATIVE_FUNCTIONS = {"EncryptFunction", "AuditAppendFunction", "ApiFunction"}


def test_the_template_declares_the_six_functions_on_the_core_layer() -> None:
    assert set(PACKAGES) == {
        "EncryptFunction",
        "AuditAppendFunction",
        "VerifyProofFunction",
        "ScoreTrustFunction",
        "AgentVoteFunction",
        "ApiFunction",
    }
    assert all(p.layers[0] == "CoreLayer" for p in PACKAGES.values())
    assert {name for name, p in PACKAGES.items() if "NativeLayer" in p.layers} == NATIVE_FUNCTIONS


LAMBDA_PYTHON = "/opt/lambda/bin/python3.12"  # stands for the interpreter the Makefiles find


def _make(makefile: Path, target: str, cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  (make, a fixed target of the project's own Makefiles)
        ["make", "-f", str(makefile), target, *arguments],  # noqa: S607
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _make_dry_run(makefile: Path, target: str, cwd: Path, lambda_python: str = LAMBDA_PYTHON) -> str:
    done = _make(
        makefile,
        target,
        cwd,
        "--dry-run",
        "ARTIFACTS_DIR=/nonexistent/artifacts",
        f"LAMBDA_PYTHON={lambda_python}",
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _compiles_after_cleaning(commands: str, directory: str) -> bool:
    """The package's bytecode is compiled for the runtime once the copied caches are gone."""
    lines = commands.splitlines()
    cleaned = lines.index(f"find {directory} -name __pycache__ -prune -exec rm -rf {{}} +")
    compiled = lines.index(
        f"{LAMBDA_PYTHON} -m compileall -q -j 0 --invalidation-mode unchecked-hash {directory}"
    )
    return cleaned < compiled


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_every_package_is_built_without_dependencies_by_the_functions_makefile(name: str) -> None:
    metadata = load_template()["Resources"][name]["Metadata"]
    assert metadata == {"BuildMethod": "makefile", "ContextPath": "functions"}
    package = PACKAGES[name]
    commands = _make_dry_run(REPO_ROOT / "functions" / "Makefile", f"build-{name}", package.code_dir)
    assert "cp *.py /nonexistent/artifacts/" in commands
    installs = [line for line in commands.splitlines() if " pip install " in line]
    if package.requirements_file.is_file():
        (install,) = installs
        assert "--no-deps" in install
        assert "--python-version 3.12" in install
        assert install.endswith("--target /nonexistent/artifacts -r requirements.txt")
        assert "find /nonexistent/artifacts -name '*.so' -type f -exec strip --strip-unneeded" in commands
    else:
        assert installs == []
    assert _compiles_after_cleaning(commands, "/nonexistent/artifacts")


def test_the_core_layer_is_built_without_dependencies_by_its_makefile() -> None:
    assert load_template()["Resources"]["CoreLayer"]["Metadata"]["BuildMethod"] == "makefile"
    core = REPO_ROOT / "layers" / "core"
    commands = _make_dry_run(core / "Makefile", "build-CoreLayer", core)
    (install,) = [line for line in commands.splitlines() if " pip install " in line]
    assert "--no-deps" in install
    assert install.endswith(f"--target /nonexistent/artifacts/python -r {core / 'requirements.txt'}")
    assert f"cp -R {core / 'reliquary'} /nonexistent/artifacts/python/reliquary" in commands
    assert "-name '*.so' -type f -exec strip --strip-unneeded" in commands
    assert _compiles_after_cleaning(commands, "/nonexistent/artifacts/python")


def test_a_function_is_built_with_bytecode_for_python_3_12_used_without_its_source(tmp_path: Path) -> None:
    # The interpreter the Makefiles find (python3.12 on PATH or pyenv's): audit-append installs nothing.
    code_dir = PACKAGES["AuditAppendFunction"].code_dir
    done = _make(
        REPO_ROOT / "functions" / "Makefile",
        "build-AuditAppendFunction",
        code_dir,
        f"ARTIFACTS_DIR={tmp_path}",
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr, "no python3.12 found: packages are built without bytecode"
    (pyc,) = (tmp_path / "__pycache__").iterdir()
    assert pyc.name == "app.cpython-312.pyc"
    header = pyc.read_bytes()[:16]
    # PEP 552: the magic of 3.12 (3531), then the flags: hash-based (bit 0), source not checked (bit 1 clear).
    assert header[:4] == (3531).to_bytes(2, "little") + b"\r\n"
    assert int.from_bytes(header[4:8], "little") == 0b01


def test_without_python_3_12_a_package_is_built_without_bytecode_and_says_so(tmp_path: Path) -> None:
    code_dir = PACKAGES["AuditAppendFunction"].code_dir
    done = _make(
        REPO_ROOT / "functions" / "Makefile",
        "build-AuditAppendFunction",
        code_dir,
        f"ARTIFACTS_DIR={tmp_path}",
        "LAMBDA_PYTHON=",
    )
    assert done.returncode == 0, done.stderr
    assert f"warning: no python3.12 (set LAMBDA_PYTHON): {tmp_path} ships without bytecode" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.py"]


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_each_set_is_pinned_as_in_the_lock(name: str) -> None:
    lock = sizes_bench.lock_pins()
    pins = PACKAGES[name].pins()
    assert pins, name
    differing = {d: v for d, v in pins.items() if lock.get(d) != v}
    assert not differing, f"{name}: pins that are not requirements.lock's: {differing}"


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_each_set_holds_every_dependency_of_what_it_holds(name: str) -> None:
    assert sizes_bench.missing_dependencies(PACKAGES[name].pins()) == {}


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_nothing_is_carried_twice(name: str) -> None:
    package = PACKAGES[name]
    own = set(package.own_pins())
    for layer in package.layers:
        assert not own & set(sizes_bench.layer_pins(layer)), f"{name} repeats {layer}'s distributions"


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_each_handler_finds_what_it_imports_when_it_loads(name: str) -> None:
    package = PACKAGES[name]
    pins = package.pins()
    for module in sorted(sizes_bench.handler_imports(package.code_dir)):
        providers = sizes_bench.providers(module)
        assert providers, f"{name} imports {module}, which no installed distribution provides"
        assert providers & set(pins), f"{name} imports {module} and deploys none of {sorted(providers)}"


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_heavy_libraries_stay_in_the_one_function_that_runs_them(name: str) -> None:
    pins = PACKAGES[name].pins()
    misplaced = sorted(d for d, owner in ONLY_IN.items() if d in pins and owner != name)
    assert not misplaced, f"{name} carries {misplaced}"
    assert {d for d, owner in ONLY_IN.items() if owner == name} <= set(pins)


def test_the_core_layer_has_what_every_handler_imports_and_nothing_only_some_need() -> None:
    core = read_pins(sizes_bench.CORE_REQUIREMENTS)
    imported = [sizes_bench.handler_imports(p.code_dir) for p in PACKAGES.values()]
    everyone = frozenset.intersection(*imported) - {"reliquary_native"}
    for module in everyone:
        assert sizes_bench.providers(module) & set(core), module
    for distribution in ("pyyaml", "webauthn", "packaging", *ONLY_IN):
        assert distribution not in core, distribution


def test_every_declared_runtime_dependency_is_deployed_somewhere() -> None:
    with (REPO_ROOT / "pyproject.toml").open("rb") as stream:
        project = tomllib.load(stream)["project"]
    deployed: dict[str, str] = {}
    for package in PACKAGES.values():
        deployed.update(package.pins())
    declared = [*project["dependencies"], *project["optional-dependencies"]["api"]]
    for requirement in declared:
        name, _, version = requirement.partition("==")
        assert deployed.get(canonical(name.split("[")[0])) == version, requirement
    api = PACKAGES["ApiFunction"].own_pins()
    for requirement in project["optional-dependencies"]["api"]:
        assert canonical(requirement.split("==")[0].split("[")[0]) in api, requirement


def test_a_missing_dependency_is_named() -> None:
    pins = dict(PACKAGES["AgentVoteFunction"].pins())
    del pins["zstandard"]
    assert sizes_bench.missing_dependencies(pins) == {"langsmith": {"zstandard"}}


def test_requirements_files_hold_only_exact_pins(tmp_path: Path) -> None:
    loose = tmp_path / "requirements.txt"
    loose.write_text("# a comment\nlanggraph>=1.2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not an exact pin"):
        read_pins(loose)
    twice = tmp_path / "twice.txt"
    twice.write_text("PyYAML==6.0.4\npyyaml==6.0.4\n", encoding="utf-8")
    with pytest.raises(ValueError, match="pinned twice"):
        read_pins(twice)


def test_handler_imports_skip_what_loads_on_first_use(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "from typing import TYPE_CHECKING\nimport yaml\nif TYPE_CHECKING:\n    import fastapi\n"
        "def handler():\n    import langgraph\n",
        encoding="utf-8",
    )
    assert sizes_bench.handler_imports(tmp_path) == {"yaml"}


def test_each_function_fits_lambda_and_the_target() -> None:
    result = sizes_bench.sizes_table(quick=True)
    rows = {str(row["function"]): row for row in result.table.rows}
    baseline = rows.pop("(baseline) one CoreLayer with everything")
    assert set(rows) == set(PACKAGES)
    totals = {name: float(str(row["total_mb"])) for name, row in rows.items()}
    for name, total in totals.items():
        assert 20 < total < sizes_bench.TARGET_MB < sizes_bench.LAMBDA_LIMIT_MB, name
        # Every package carries the bytecode of its modules (layers/wheels.mk compiles them).
        assert 5 < float(str(rows[name]["bytecode_mb"])) < total / 2, name
    # The single layer carried LangGraph, MCL and the web stack to every function.
    assert float(str(baseline["total_mb"])) > max(totals.values()) + 40
    assert result.summary["size_largest_mb"] == max(totals.values())
    assert result.summary["size_single_layer_mb"] == baseline["total_mb"]


def test_the_bench_section_prints_every_function_without_building(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run.main(["--quick", "--only", "sizes", "--json", str(path)]) == 0
    output = printed.getvalue()
    assert "estimate from this virtualenv's installed distributions (no build)" in output
    assert "of 250 MB limit" in output
    assert "of 120 MB target" in output
    table = json.loads(path.read_text(encoding="utf-8"))["tables"]["sizes"]
    assert {row["function"] for row in table["rows"]} == {
        *PACKAGES,
        "(baseline) one CoreLayer with everything",
    }


def test_the_build_cache_key_follows_the_requirements(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    before = sizes_bench.build_key()
    assert before == sizes_bench.build_key()
    fake_root = tmp_path / "repo"
    for relative in (
        *sizes_bench.BUILD_INPUTS,
        *[str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "functions").glob("*/requirements.txt")],
    ):
        target = fake_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((REPO_ROOT / relative).read_bytes())
    monkeypatch.setattr(sizes_bench, "REPO_ROOT", fake_root)
    assert sizes_bench.build_key() == before
    with (fake_root / "functions" / "score_trust" / "requirements.txt").open("a", encoding="utf-8") as f:
        f.write("packaging==26.4\n")
    assert sizes_bench.build_key() != before


def test_without_the_sam_cli_the_full_section_says_it_estimates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sizes_bench, "SAM", tmp_path / "no-sam")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = sizes_bench.sizes_table(quick=False)
    assert result.table.notes[0].startswith("source: estimate (no SAM CLI: make sam-setup)")
    assert not (tmp_path / "cache").exists()


def _write_package(root: Path, files: dict[str, int], distribution: str | None = None) -> None:
    for relative, size in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
    if distribution is not None:
        record = root / f"{distribution}-1.0.dist-info" / "RECORD"
        record.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{name},sha256=x,{size}" for name, size in files.items()]
        record.write_text("\n".join([*lines, "x/__pycache__/a.cpython-312.pyc,,", ""]), encoding="utf-8")


def test_a_cached_build_is_read_not_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(sizes_bench, "SAM", tmp_path / "no-sam")  # a rebuild would fall back to the estimate
    build = sizes_bench.cache_root() / sizes_bench.build_key()
    core = {"pydantic/main.py": 3_000_000, "pydantic/__pycache__/main.cpython-312.pyc": 1_000_000}
    _write_package(build / "CoreLayer" / "python", core, "pydantic")
    _write_package(build / "NativeLayer" / "lib", {"liboqs.so": 2_000_000})
    for name in PACKAGES:
        _write_package(build / name, {"app.py": 1_000})
    langgraph = {"langgraph/graph.py": 5_000_000, "langgraph/__pycache__/graph.cpython-312.pyc": 500_000}
    _write_package(build / "AgentVoteFunction", langgraph, "langgraph")
    result = sizes_bench.sizes_table(quick=False)
    assert "(reused: its inputs are unchanged)" in result.table.notes[0]
    totals = {row["function"]: row["total_mb"] for row in result.table.rows}
    assert totals["AgentVoteFunction"] == pytest.approx(9.501, abs=0.001)
    assert totals["EncryptFunction"] == pytest.approx(6.001, abs=0.001)
    assert totals["ScoreTrustFunction"] == pytest.approx(4.001, abs=0.001)
    bytecode = {row["function"]: row["bytecode_mb"] for row in result.table.rows}
    assert bytecode["AgentVoteFunction"] == pytest.approx(1.5)
    assert bytecode["EncryptFunction"] == pytest.approx(1.0)
    # The baseline (deployed without bytecode, as before): the package's modules, the two distributions
    # once each, and the NativeLayer.
    baseline = result.summary["size_single_layer_mb"]
    assert baseline == pytest.approx(sizes_bench._tree_bytes(sizes_bench.CORE_PACKAGE) / 1e6 + 10.0, abs=0.01)
