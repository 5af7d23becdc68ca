# The two commands of README.md:
#   make demo   set up .venv (first time: ~15 min, mostly the mmcv build) and run the main job
#   make test   set up .venv and run the test suite (what CI runs)
PY      := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test test-all

setup:
	@bash tools/setup_env.sh

demo: setup
	$(PY) tools/run_demo.py

# Default suite: everything except the opt-in markers `slow` and `gpu` (see setup.cfg), the
# test folders in reverse order (a plain `pytest tests` runs them in the default order, so
# state one folder leaves behind for another fails in one of the two).
# pytest exits 5 when it collected nothing: that is a failure, never a pass.
test: setup
	@$(PY) -m pytest tests -m "not slow and not gpu" --folder-order reverse $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# Everything that runs on a CPU, the slow opt-in checks included.
test-all: setup
	@$(PY) -m pytest tests -m "not gpu" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc
