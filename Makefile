# The two commands of the README's quick start. Both create .venv and install the project once
# (again only when pyproject.toml changes).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV ?= .venv

.PHONY: demo test ui clean axolotl-env

# llama-cpp-python compiles llama.cpp for this CPU (about 6 minutes, once: pip keeps the wheel in its cache).
# Without AMX: llama.cpp's AMX matmul crashes on quantized models on the AMX machines we run on.
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
endif

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	@# This machine's pip configuration names local indexes that may not exist: hide that noise only.
	CFLAGS="$(NO_AMX)" CXXFLAGS="$(NO_AMX)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(VENV)/bin/pip install --quiet -e '.[dev]' 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	touch $@

demo: $(VENV)/.installed  ## the main job end to end for the demo author, on the embedded stores
	$(VENV)/bin/twin demo

test: $(VENV)/.installed  ## the test suite
	$(VENV)/bin/pytest -q

ui: $(VENV)/.installed  ## Dagster's UI and daemon on the instance the twin commands use
	$(VENV)/bin/twin ui

# axolotl, the second trainer, in an environment of its own: it pins an older Hugging Face stack and pulls a
# GPU stack (about 4 GB). `twin train --trainer axolotl` (or TWIN_TRAINER=axolotl) runs it through Dagster Pipes.
axolotl-env: .venv-axolotl/.installed
.venv-axolotl/.installed:
	python3 -m venv .venv-axolotl
	.venv-axolotl/bin/pip install --quiet "axolotl==0.19.0" "dagster-pipes" "pyyaml" 2>&1 | \
		{ grep -v "is ignored: it is neither a file nor a directory" || true; }
	touch $@

clean:
	rm -rf $(VENV) .venv-axolotl .twin
