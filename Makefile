# The two commands of the README. Both do all the set-up they need first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo clean

setup:
	@./scripts/setup.sh

test: setup
	$(PY) -m pytest test

demo: setup
	$(PY) scripts/demo.py

clean:  # the venv keeps its own build (.venv/build), so its install survives this
	rm -rf build install log
