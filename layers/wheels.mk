# Shared by layers/core/Makefile and functions/Makefile (`sam build`, BuildMethod: makefile): installs exactly the
# distributions a requirements file pins, as Lambda's python3.12 x86_64 (Amazon Linux 2023, glibc 2.34) loads
# them. --no-deps: each file lists its whole share of the dependency closure, the pins of requirements.lock, and
# nothing a layer below it already carries (tests/unit/test_lambda_packages.py checks all three, offline).
# --no-compile: pip would write bytecode for the interpreter running it; compile_bytecode writes the runtime's.
# `sam build --cached` hashes each package's own directory and Makefile, not this file: after editing it,
# build once with --no-cached.
PYTHON ?= python3
LAMBDA_PLATFORMS := manylinux2014_x86_64 manylinux_2_28_x86_64 manylinux_2_34_x86_64
PIP_LAMBDA := $(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
	--only-binary=:all: --implementation cp --python-version 3.12 --abi cp312 \
	$(addprefix --platform ,$(LAMBDA_PLATFORMS))

STRIP ?= strip

# $(1): requirements file, $(2): target directory. Console scripts (bin/) are of no use in a Lambda package.
# Extension modules lose their debug symbols (what the NativeLayer does to liboqs): zstandard's two backends
# go from 24 MB to 2, cryptography's from 14 to 11.5; the dynamic symbols Python loads them by stay.
define install_wheels
$(PIP_LAMBDA) --target $(2) -r $(1)
rm -rf $(2)/bin
find $(2) -name '*.so' -type f -exec $(STRIP) --strip-unneeded {} +
endef

# Lambda's interpreter, python3.12, for the packages' bytecode: LAMBDA_PYTHON if given, else the first of these
# that runs as 3.12: python3.12 on PATH (a pyenv shim on PATH may name a version that is not selected),
# then pyenv's 3.12 installs.
ifeq ($(origin LAMBDA_PYTHON),undefined)
LAMBDA_PYTHON := $(shell for p in python3.12 "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null && command -v "$$p" && break; done)
endif

# $(1): a package's directory. Lambda's /opt and /var/task are read-only, so without bytecode in the package
# every cold start compiles every module it imports from source: 2 to 3 times the CPU of each handler's
# import (docs/performance.md, "Cold starts"). unchecked-hash: the .pyc is used without reading its source
# (mtimes in a zip mean nothing, and nothing changes a deployed package). Without python3.12 the package is
# built without bytecode, with a warning: it works, and its cold starts are slower.
define compile_bytecode
$(if $(LAMBDA_PYTHON),$(LAMBDA_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(1),@echo \
	"warning: no python3.12 (set LAMBDA_PYTHON): $(1) ships without bytecode, slower cold starts" >&2)
endef
