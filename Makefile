# Two entry points (README): `make demo` and `make test`. Both install into .venv/ idempotently.
PY      := .venv/bin/python
STAMP   := .venv/.installed
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: demo test venv labelstudio clean-demo bench

# Label Studio is an application with its own pinned dependencies: its own virtualenv, never .venv/
# (relcurate talks to it over HTTP). The stamp names the version so a bump reinstalls.
LS_VERSION := 1.23.2
LS_VENV    := .venv-labelstudio
LS_STAMP   := $(LS_VENV)/.installed-$(LS_VERSION)

$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(PY) || python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

$(LS_STAMP):
	test -x $(LS_VENV)/bin/python || python3.11 -m venv $(LS_VENV) || python3 -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install -q --upgrade pip
	$(LS_VENV)/bin/python -m pip install -q label-studio==$(LS_VERSION)
	touch $(LS_STAMP)

labelstudio: $(LS_STAMP)

# `exec`: the shell becomes the server, so make's only child is `relcurate demo` itself. GNU make
# forwards SIGTERM to it; SIGINT/SIGHUP reach it from the terminal (same process group), but one
# sent to make's pid alone is not forwarded (make waits) -- process managers run `relcurate serve`.
demo: $(STAMP)
	exec $(PY) -m relcurate.cli.main demo --workspace demo-workspace $(DEMO_ARGS)

# pytest exits 5 when it collected nothing: that is a broken suite, never a pass.
test: $(STAMP) $(LS_STAMP)
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: $(STAMP) $(LS_STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean-demo:
	rm -rf demo-workspace
