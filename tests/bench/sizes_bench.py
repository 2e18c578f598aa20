"""What each function deploys (its package and its layers, unzipped) beside Lambda's 250 MB limit.

The dependency sets come from template.yaml and the requirements files, read offline:

- the CoreLayer installs layers/core/requirements.txt, every function's package its own
  functions/<name>/requirements.txt (both without dependencies: layers/wheels.mk);
- the NativeLayer is liboqs, its libcrypto, liboqs-python and the loader (layers/native/Makefile).

Figures come from a real ``sam build`` (run once into a cache keyed by the hash of every input of the build,
then reused) or, in ``--quick`` mode or when the SAM CLI is missing, from an estimate: the installed size
of each pinned distribution in this virtualenv (its RECORD, its extension modules as ``strip`` leaves them,
as the build does) and the native layer's local build, plus the bytecode the build compiles, estimated from
the size of the Python sources. MB here is 10^6 bytes, of the files' apparent sizes, bytecode included.
"""

from __future__ import annotations

import ast
import csv
import functools
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.template import REPO_ROOT, load_template
from tests.bench.report import Column, Table

LAMBDA_LIMIT_MB = 250.0  # function code and every layer, unzipped (a Lambda quota, not adjustable)
TARGET_MB = 120.0
CORE_REQUIREMENTS = REPO_ROOT / "layers" / "core" / "requirements.txt"
CORE_PACKAGE = REPO_ROOT / "layers" / "core" / "reliquary"
NATIVE = REPO_ROOT / "layers" / "native"
# The NativeLayer's Python side: the binding (liboqs-python) and the loader; lib/ holds the shared libraries.
NATIVE_DISTRIBUTIONS = {"liboqs-python": "0.16.0.1"}
# Everything `sam build` reads: a change to any of them invalidates the cached build.
BUILD_INPUTS = (
    "template.yaml",
    "layers/wheels.mk",
    "layers/core/Makefile",
    "layers/core/requirements.txt",
    "layers/native/Makefile",
    "functions/Makefile",
)
SAM = REPO_ROOT / ".venv-sam" / "bin" / "sam"
SAM_BUILD_TIMEOUT_S = 1800
# What Lambda's python3.12 on x86_64 is, for dependency markers.
LAMBDA_MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def canonical(name: str) -> str:
    """A distribution's normalised name (PEP 503): ``PyYAML`` and ``pyyaml`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """The ``name==version`` lines of a requirements file, by canonical name; anything else is refused."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise ValueError(f"{path.name}:{number}: not an exact pin (name==version)")
        name = canonical(match.group(1))
        if name in pins:
            raise ValueError(f"{path.name}:{number}: {name} is pinned twice")
        pins[name] = match.group(2)
    return pins


@dataclass(frozen=True, slots=True)
class FunctionPackage:
    logical_id: str
    code_dir: Path
    layers: tuple[str, ...]  # logical ids of its layers, in order

    @property
    def requirements_file(self) -> Path:
        return self.code_dir / "requirements.txt"

    def own_pins(self) -> dict[str, str]:
        """What its package installs beside the handler (empty without a requirements file)."""
        return read_pins(self.requirements_file) if self.requirements_file.is_file() else {}

    def pins(self) -> dict[str, str]:
        """Every distribution the function can import: its own and its layers'."""
        every = dict(self.own_pins())
        for layer in self.layers:
            every.update(layer_pins(layer))
        return every


def layer_pins(logical_id: str) -> dict[str, str]:
    if logical_id == "CoreLayer":
        return read_pins(CORE_REQUIREMENTS)
    if logical_id == "NativeLayer":
        return dict(NATIVE_DISTRIBUTIONS)
    raise ValueError(f"unknown layer {logical_id}")


def function_packages() -> list[FunctionPackage]:
    """Every Lambda function of template.yaml, with its code directory and its layers."""
    packages = []
    for logical_id, resource in load_template()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        layers = tuple(ref["Ref"] for ref in properties.get("Layers", []))
        packages.append(FunctionPackage(logical_id, REPO_ROOT / properties["CodeUri"], layers))
    return packages


# ------------------------------------------------------------------ dependency closure (offline)


def requirements_of(name: str, extras: frozenset[str] = frozenset()) -> list[tuple[str, frozenset[str]]]:
    """The distributions ``name`` (installed in this virtualenv) requires on Lambda's python3.12."""
    from packaging.requirements import Requirement  # only the checks need it

    found = []
    for text in importlib.metadata.requires(name) or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None or any(
            marker.evaluate({**LAMBDA_MARKERS, "extra": extra}) for extra in ("", *sorted(extras))
        ):
            found.append((canonical(requirement.name), frozenset(requirement.extras)))
    return found


def missing_dependencies(pins: dict[str, str]) -> dict[str, set[str]]:
    """For each pinned distribution, what it requires that the set does not hold (empty: closed)."""
    missing: dict[str, set[str]] = {}
    for name in pins:
        for required, _extras in requirements_of(name):
            if required not in pins:
                missing.setdefault(name, set()).add(required)
    return missing


def lock_pins() -> dict[str, str]:
    return read_pins_lenient(REPO_ROOT / "requirements.lock")


def read_pins_lenient(path: Path) -> dict[str, str]:
    """A pip freeze file's pins (its other lines, e.g. editable installs, are skipped)."""
    pins = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(raw.split("#", 1)[0].strip())
        if match is not None:
            pins[canonical(match.group(1))] = match.group(2)
    return pins


# ------------------------------------------------------------------ what a handler imports when it loads


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_level_imports(path: Path, module: str) -> set[str]:
    """The modules ``path`` imports when it is imported: not those inside functions (loaded on first
    use) nor under ``if TYPE_CHECKING``; relative imports resolved against ``module``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If):
                visit(node.orelse if _is_type_checking(node) else [*node.body, *node.orelse])
            elif isinstance(node, ast.Try):
                visit([*node.body, *node.orelse, *node.finalbody])
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.With | ast.ClassDef):
                visit(node.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def _source_of(module: str) -> Path | None:
    parts = module.split(".")
    for base in (REPO_ROOT / "layers" / "core", NATIVE):
        candidate = base.joinpath(*parts)
        if (candidate / "__init__.py").is_file():
            return candidate / "__init__.py"
        if candidate.with_suffix(".py").is_file():
            return candidate.with_suffix(".py")
    return None


@functools.cache
def handler_imports(code_dir: Path) -> frozenset[str]:
    """The top-level names of the third-party modules a handler loads when Lambda imports it, following
    the layers' own modules (reliquary, reliquary_native) through their module-level imports."""
    third_party: set[str] = set()
    seen: set[str] = set()
    pending = [(code_dir / "app.py", "app")]
    while pending:
        path, module = pending.pop()
        for imported in module_level_imports(path, module):
            parts = imported.split(".")
            top = parts[0]
            if _source_of(top) is None:
                if top not in sys.stdlib_module_names and top != "__future__":
                    third_party.add(top)
                continue
            if top == "reliquary_native":
                third_party.add(top)
            for depth in range(1, len(parts) + 1):
                name = ".".join(parts[:depth])
                source = _source_of(name)
                if source is not None and name not in seen:
                    seen.add(name)
                    pending.append((source, name))
    return frozenset(third_party)


@functools.cache
def _distributions_of_modules() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def providers(top_level: str) -> set[str]:
    """The distributions that install a top-level module (``yaml`` -> ``pyyaml``), from this virtualenv;
    ``reliquary_native`` is the NativeLayer's own."""
    if top_level == "reliquary_native":
        return {"liboqs-python"}
    return {canonical(name) for name in _distributions_of_modules().get(top_level, [])}


# ------------------------------------------------------------------ sizes


# The bytecode layers/wheels.mk's compile_bytecode adds per byte of Python source (CPython 3.12 .pyc files,
# unchecked-hash), as measured on the built packages (55.1 MB of .pyc for 51.3 MB of .py over the CoreLayer
# and the six functions' packages): what an estimate adds for each package the build compiles.
BYTECODE_PER_SOURCE_BYTE = 1.07


@functools.cache
def _stripped_bytes(path: Path) -> int:
    """What ``strip --strip-unneeded`` (layers/wheels.mk) leaves of an extension module; its size as
    installed where ``strip`` is missing or fails."""
    strip = shutil.which("strip")
    if strip is None:
        return path.stat().st_size
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / path.name
        shutil.copyfile(path, copy)
        done = subprocess.run(  # noqa: S603  (binutils' strip on a copy)
            [strip, "--strip-unneeded", str(copy)], capture_output=True, check=False, timeout=60
        )
        return copy.stat().st_size if done.returncode == 0 else path.stat().st_size


def _record_bytes(name: str, *, stripped: bool = False) -> int:
    """A distribution's installed size in this virtualenv, from its RECORD, without bytecode; ``stripped``:
    its extension modules as the build strips them."""
    files = importlib.metadata.distribution(name).files or []
    return sum(
        _stripped_bytes(Path(str(f.locate()))) if stripped and f.suffix == ".so" else f.size or 0
        for f in files
        if f.suffix != ".pyc" and "__pycache__" not in f.parts and f.size
    )


def _record_source_bytes(name: str) -> int:
    """The size of a distribution's Python modules (what compile_bytecode compiles), from its RECORD."""
    files = importlib.metadata.distribution(name).files or []
    return sum(f.size or 0 for f in files if f.suffix == ".py" and f.size)


def _estimated_bytecode(source_bytes: int) -> int:
    return round(source_bytes * BYTECODE_PER_SOURCE_BYTE)


def _is_bytecode(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix == ".pyc"


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def _tree_bytes(root: Path, *, bytecode: bool = False) -> int:
    """The files under ``root``; its bytecode too when ``bytecode`` (a built package's, not a source tree's
    local caches)."""
    return sum(p.stat().st_size for p in _files(root) if bytecode or not _is_bytecode(p))


def _bytecode_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in _files(root) if _is_bytecode(p))


def _source_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in _files(root) if p.suffix == ".py" and not _is_bytecode(p))


@dataclass(frozen=True, slots=True)
class Sizes:
    functions: dict[str, int]  # each function package, bytes (its bytecode included)
    layers: dict[str, int]  # each layer, bytes (its bytecode included)
    distributions: dict[str, int]  # each deployed distribution (wherever it is), bytes, without bytecode
    bytecode: dict[str, int]  # the .pyc bytes of each function package and layer (by logical id)

    def single_layer_bytes(self) -> int:
        """The layout before the split: one CoreLayer with the package and every distribution any function
        deploys (each once, as pip installs it: unstripped, without bytecode), and the NativeLayer, under
        every function."""
        native = self.layers["NativeLayer"] - self.bytecode["NativeLayer"]
        return _tree_bytes(CORE_PACKAGE) + sum(self.distributions.values()) + native


def estimated_sizes(packages: list[FunctionPackage]) -> Sizes:
    """Sizes estimated without building, from this virtualenv's installed distributions; the bytecode from
    the size of the Python sources (``BYTECODE_PER_SOURCE_BYTE``)."""
    names = {name for package in packages for name in (*package.own_pins(), *layer_pins("CoreLayer"))}
    distributions = {name: _record_bytes(name) for name in names}  # as pip installs them: the baseline
    deployed = {name: _record_bytes(name, stripped=True) for name in names}
    compiled = {name: _estimated_bytecode(_record_source_bytes(name)) for name in names}
    bytecode = {
        "CoreLayer": _estimated_bytecode(_source_bytes(CORE_PACKAGE))
        + sum(compiled[n] for n in layer_pins("CoreLayer")),
        "NativeLayer": 0,
    }
    layers = {
        "CoreLayer": _tree_bytes(CORE_PACKAGE)
        + sum(deployed[n] for n in layer_pins("CoreLayer"))
        + bytecode["CoreLayer"],
        "NativeLayer": _tree_bytes(NATIVE / "lib")
        + _tree_bytes(NATIVE / "reliquary_native")
        + sum(map(_record_bytes, NATIVE_DISTRIBUTIONS)),
    }
    functions = {}
    for p in packages:
        code = sum(f.stat().st_size for f in p.code_dir.glob("*.py"))
        bytecode[p.logical_id] = _estimated_bytecode(code) + sum(compiled[n] for n in p.own_pins())
        functions[p.logical_id] = code + sum(deployed[n] for n in p.own_pins()) + bytecode[p.logical_id]
    return Sizes(functions, layers, distributions, bytecode)


def build_key() -> str:
    """A hash of every input of `sam build` that decides what the packages hold."""
    digest = hashlib.sha256()
    paths = [REPO_ROOT / p for p in BUILD_INPUTS]
    paths += sorted((REPO_ROOT / "functions").glob("*/requirements.txt"))
    for path in paths:
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reliquary" / "sam-build"


def sam_build(build_dir: Path) -> str | None:
    """Runs `sam build` into ``build_dir`` (offline credentials, never a profile); None, or why it cannot."""
    # Every package is built by a Makefile with pip's --python-version 3.12: no python3.12 needed here.
    if not SAM.is_file():
        return "no SAM CLI: make sam-setup"
    scratch = build_dir.with_name(build_dir.name + ".tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    done = subprocess.run(  # noqa: S603  (the project's SAM CLI, fixed arguments)
        # --no-cached: SAM's own cache (samconfig.toml turns it on) does not see layers/wheels.mk change.
        [
            str(SAM),
            "build",
            "--no-cached",
            "--template",
            str(REPO_ROOT / "template.yaml"),
            "--build-dir",
            str(scratch),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SAM_BUILD_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        return f"sam build failed ({last[:200]})"
    if build_dir.is_dir():  # another run built the same inputs meanwhile
        shutil.rmtree(scratch)
    else:
        scratch.rename(build_dir)
    return None


def _built_distributions(root: Path) -> dict[str, int]:
    """The distributions installed under ``root`` and their sizes, from their RECORD files."""
    found = {}
    for record in root.glob("*.dist-info/RECORD"):
        name = canonical(record.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        rows = csv.reader(record.read_text(encoding="utf-8").splitlines())
        found[name] = sum(int(row[2]) for row in rows if row[2].isdigit() and not row[0].endswith(".pyc"))
    return found


def built_sizes(build_dir: Path, packages: list[FunctionPackage]) -> Sizes:
    ids = [*{layer for p in packages for layer in p.layers}, *(p.logical_id for p in packages)]
    built = {name: _tree_bytes(build_dir / name, bytecode=True) for name in ids}
    bytecode = {name: _bytecode_bytes(build_dir / name) for name in ids}
    layers = {layer: built[layer] for p in packages for layer in p.layers}
    functions = {p.logical_id: built[p.logical_id] for p in packages}
    distributions = _built_distributions(build_dir / "CoreLayer" / "python")
    for package in packages:
        distributions.update(_built_distributions(build_dir / package.logical_id))
    return Sizes(functions, layers, distributions, bytecode)


@dataclass(frozen=True, slots=True)
class SizesResult:
    table: Table
    summary: dict[str, Any]


def sizes_table(quick: bool) -> SizesResult:
    """Each function's unzipped total (package + layers) beside the limit and the target; ``quick`` never
    builds (an estimate from the installed distributions)."""
    packages = function_packages()
    source = (
        "estimate from this virtualenv's installed distributions (no build): their extension modules"
        " stripped as the build strips them, the bytecode estimated"
    )
    measured = None
    if not quick:
        build_dir = cache_root() / build_key()
        reused = build_dir.is_dir()
        reason = None if reused else sam_build(build_dir)
        if reason is None:
            measured = built_sizes(build_dir, packages)
            how = "reused: its inputs are unchanged" if reused else "built now; reused while its inputs hold"
            source = f"sam build in {build_dir} ({how})"
        else:
            source = f"estimate ({reason})"
    sizes = measured or estimated_sizes(packages)
    function_bytes, layer_bytes = sizes.functions, sizes.layers

    table = Table(
        "sizes",
        "Lambda package sizes, unzipped: each function's code and dependencies plus its layers",
        [
            Column("function", "function"),
            Column("code_mb", "package MB", ",.1f"),
            Column("layers", "layers"),
            Column("layers_mb", "layers MB", ",.1f"),
            Column("total_mb", "total MB", ",.1f"),
            Column("bytecode_mb", "of it bytecode MB", ",.1f"),
            Column("of_limit", "of 250 MB limit", ".0%"),
            Column("of_target", "of 120 MB target", ".0%"),
        ],
        notes=[
            f"source: {source}",
            "MB = 10^6 bytes of the files' apparent sizes",
            (
                "bytecode = the .pyc files compile_bytecode (layers/wheels.mk) writes into the CoreLayer and"
                " the function packages with python3.12, so no cold start compiles a module; estimated as"
                f" {BYTECODE_PER_SOURCE_BYTE} bytes per byte of Python source without a build"
            ),
            (
                "baseline: the layout before the split, one CoreLayer with every distribution any function"
                " deploys (as pip installs them) and the NativeLayer"
            ),
        ],
    )
    summary: dict[str, Any] = {}
    for package in packages:
        code = function_bytes[package.logical_id] / 1e6
        layers = sum(layer_bytes[layer] for layer in package.layers) / 1e6
        total = code + layers
        bytecode = sum(sizes.bytecode[name] for name in (package.logical_id, *package.layers)) / 1e6
        table.add(
            function=package.logical_id,
            code_mb=code,
            layers=" + ".join(package.layers),
            layers_mb=layers,
            total_mb=total,
            bytecode_mb=bytecode,
            of_limit=total / LAMBDA_LIMIT_MB,
            of_target=total / TARGET_MB,
        )
        summary[f"size_{package.logical_id}_mb"] = total
    largest = max(packages, key=lambda p: summary[f"size_{p.logical_id}_mb"])
    summary["size_largest_mb"] = summary[f"size_{largest.logical_id}_mb"]
    # The baseline, from the same sizes: every distribution in one CoreLayer, as before the split.
    before = sizes.single_layer_bytes() / 1e6
    table.add(
        function="(baseline) one CoreLayer with everything",
        code_mb=0.0,
        layers="CoreLayer + NativeLayer",
        layers_mb=before,
        total_mb=before,
        bytecode_mb=0.0,
        of_limit=before / LAMBDA_LIMIT_MB,
        of_target=before / TARGET_MB,
    )
    summary["size_single_layer_mb"] = before
    table.footer.append(
        f"   largest: {largest.logical_id} {summary['size_largest_mb']:,.1f} MB"
        f" ({summary['size_largest_mb'] / before:.2f}x the single-layer baseline, {before:,.1f} MB)"
    )
    return SizesResult(table, summary)
