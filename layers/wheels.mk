# Shared by layers/core/Makefile and functions/Makefile (`sam build`, BuildMethod: makefile): installs exactly the
# distributions a requirements file pins, as Lambda's python3.12 x86_64 (Amazon Linux 2023, glibc 2.34) loads
# them. --no-deps: each file lists its whole share of the dependency closure, the pins of requirements.lock, and
# nothing a layer below it already carries (tests/unit/test_lambda_packages.py checks all three, offline).
# --no-compile: a .pyc written by this interpreter would be for its version, not the runtime's.
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
