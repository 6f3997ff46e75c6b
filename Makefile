# Two entry points, each self-contained on a fresh machine:
#   make demo   installs into .venv and runs the main job on the embedded dataset
#   make test   installs into .venv (with test extras) and runs lint + tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU wheel of torch on the development machines; override for CUDA, e.g.
#   make test TORCH_SPEC="torch>=2.2"
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test install lint docs clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned, so that the package's permissive `torch>=2.2`
	# does not pull a multi-GB CUDA build; setuptools<81 keeps pkg_resources
	# for dcase_util (imported by sed_eval).
	$(PY) -m pip install -q "$(TORCH_SPEC)" "setuptools<81"
	$(PY) -m pip install -q -e ".[test,distributed,psds,docs,accelerate,onnx]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/sklearn-sed demo --output-dir demo_output

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Every test, the slow ones (subprocesses, memory, documentation builds)
# included; a bare `pytest` skips those for a quick loop.
test: lint
	$(PY) -m pytest --runslow --durations=25

# The API reference, from the docstrings; any warning (a broken reference
# among them) fails the build. tests/test_api_docs.py runs the same build.
docs: install
	$(VENV)/bin/sphinx-build -W --keep-going -n -q -b html docs/api docs/_build/api

clean:
	rm -rf $(VENV) demo_output docs/_build docs/api/generated
