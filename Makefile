# Every target does its own set-up on a fresh machine: uv, the virtualenv, and the system packages.
SHELL := /bin/bash
# uv from PATH, else the one pip installs (always reachable as `python3 -m uv`).
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif

.PHONY: setup test test-lowest lint demo bench clean system-deps

setup: .venv/.synced system-deps

.venv/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --all-extras
	@touch $@

# bubblewrap isolates sandboxes, libseccomp2 compiles their syscall filter and e2fsprogs makes their
# disk images; cadaver and rclone are the real WebDAV clients the tests use; git answers the toolbox's
# /git routes inside sandboxes; postgresql is the server the [postgres] extra's savers are tested on.
system-deps:
	@missing=""; for pkg in bwrap:bubblewrap /usr/lib/*/libseccomp.so.2:libseccomp2 mkfs.ext4:e2fsprogs \
	  cadaver:cadaver rclone:rclone git:git /usr/lib/postgresql/*/bin/initdb:postgresql; do \
	  { command -v $${pkg%%:*} || ls $${pkg%%:*}; } >/dev/null 2>&1 || missing="$$missing $${pkg##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; \
	  else echo "please install:$$missing (e.g. sudo apt-get install$$missing)"; fi; fi
	@# The TypeScript language server sandboxes run from the host's /usr (npm's global prefix there).
	@command -v typescript-language-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v npm >/dev/null 2>&1; then \
	    echo "installing: typescript-language-server typescript (npm)"; \
	    npm install -g --silent --no-audit --no-fund "typescript-language-server@^4.4" "typescript@^5.9" >/dev/null; \
	  else echo "optional: npm install -g typescript-language-server typescript (TypeScript LSP)"; fi; }

lint: setup
	$(UV) run --frozen ruff check src packages tests benchmarks examples
	$(UV) run --frozen ruff format --check src packages tests benchmarks examples

test: setup
	$(UV) run --frozen pytest -q

# The suite again at the lowest versions our ranges admit (direct dependencies), in its own venv,
# so a range's floor is a version that truly works.
test-lowest: system-deps
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	rm -rf .venv-lowest
	$(UV) venv --quiet .venv-lowest
	$(UV) pip install --quiet --python .venv-lowest/bin/python --resolution lowest-direct \
	  -e '.[all]' -e packages/daytona-local --group dev
	VIRTUAL_ENV= .venv-lowest/bin/python -m pytest -q

demo: setup
	$(UV) run --frozen deepagents-daytona demo

bench: setup
	for script in local_server tool_latency concurrency webdav_stream noisy_neighbour output_memory install_footprint first_tool_call stream_latency; do \
	  $(UV) run --frozen python benchmarks/$$script.py || exit 1; done

clean:
	rm -rf .venv .venv-lowest .pytest_cache .ruff_cache
