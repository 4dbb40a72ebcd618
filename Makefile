# Two entry points (README): `make demo` and `make test`. Both install into .venv/ idempotently.
PY      := .venv/bin/python
STAMP   := .venv/.installed
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: demo test venv clean-demo bench

$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(PY) || python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# `exec`: the shell becomes the server, so make's only child is `relcurate demo` itself. GNU make
# forwards SIGTERM to it; SIGINT/SIGHUP reach it from the terminal (same process group), but one
# sent to make's pid alone is not forwarded (make waits) -- process managers run `relcurate serve`.
demo: $(STAMP)
	exec $(PY) -m relcurate.cli.main demo --workspace demo-workspace $(DEMO_ARGS)

# pytest exits 5 when it collected nothing: that is a broken suite, never a pass.
test: $(STAMP)
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: $(STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean-demo:
	rm -rf demo-workspace
