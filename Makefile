# `make demo` and `make test` work on a fresh machine: each creates the venv when missing.
# The venv is made from a system Python when there is one, so the unprivileged sandbox uid
# can execute the worker's interpreter (pyenv builds under /root are not reachable by it).
PYTHON ?= $(shell for p in /usr/bin/python3.11 /usr/bin/python3 python3.11 python3; do \
            command -v $$p >/dev/null 2>&1 && { command -v $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: install demo test bench bench-batch clean docker-test

# Each bundled assignment's `requirements` (assignment.toml) are installed with dlgrade.
$(BIN)/.installed: pyproject.toml constraints.txt $(wildcard assignments/*/assignment.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(FIND_LINKS) -c constraints.txt -e '.[dev]'
	$(BIN)/dlgrade requirements > $(VENV)/assignment-requirements.txt
	test ! -s $(VENV)/assignment-requirements.txt || \
	    $(BIN)/pip install -q $(FIND_LINKS) -c constraints.txt -r $(VENV)/assignment-requirements.txt
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/dlgrade grade solutions/hw1_backprop.ipynb -a hw1_backprop --results demo-out/solution.json
	$(BIN)/dlgrade grade assignments/hw1_backprop/hw1_backprop.ipynb -a hw1_backprop --results demo-out/skeleton.json

# Grading is single-threaded per submission: two pytest workers use both cores.
JOBS ?= 2

# Lint first (seconds); --durations names the slow tests in CI's log (CI's budget is 15 min).
test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(JOBS) --durations=25 tests

# Build the CPU grading image and grade in it (tests/test_docker.py). Uses the daemon that
# answers ($DOCKER_HOST, the system one); with none, starts the private one of
# scripts/docker-daemon.sh (root), with an offline debootstrap base, and stops it after
# (DLGRADE_KEEP_DOCKER=1 keeps it). First run ~10 min (image build), then ~1 min.
docker-test: install
	@started=; status=0; state="$${DLGRADE_DOCKER_STATE:-/var/tmp/dlgrade-docker}"; \
	if ! $(BIN)/python -m autograder.containers ping >/dev/null 2>&1; then \
	    started=1; scripts/docker-daemon.sh start >/dev/null || status=1; fi; \
	if [ $$status = 0 ] && [ -z "$$DOCKER_HOST" ] && [ -S "$$state/docker.sock" ]; then \
	    scripts/docker-daemon.sh base-image || status=1; fi; \
	if [ $$status = 0 ]; then \
	    $(BIN)/python -m pytest -q -p no:xdist -rs tests/test_docker.py || status=$$?; fi; \
	if [ -n "$$started" ] && [ -z "$$DLGRADE_KEEP_DOCKER" ]; then scripts/docker-daemon.sh stop; fi; \
	exit $$status

# Issue 6's figures: per-assignment time and memory, the grader's overhead, otter vs dlgrade
# (about 1.5 min on the 2-core machine; the first otter run adds its venv, about 30-100 s).
bench: install
	$(BIN)/python bench/bench_grade.py
	$(BIN)/python bench/bench_otter.py

# 40 generated hw1 submissions with 1 and 2 jobs, then killed and resumed (about 6 min).
bench-batch: install
	$(BIN)/python bench/bench_batch.py

clean:
	rm -rf $(VENV) demo-out
