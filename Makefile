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

clean:
	rm -rf build install log
