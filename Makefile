# LEO Optima. `make run` sets everything up and serves on :8000; `make test` runs the test suite.
# `make dev` is `make run` with DEBUG on and reloading on code changes (never expose it).
.PHONY: setup run dev test bench worker beat

setup:
	scripts/setup.sh

run:
	scripts/run.sh

dev:
	LEO_DEV=1 scripts/run.sh

test:
	scripts/setup.sh
	.venv/bin/pip install -q --disable-pip-version-check -r requirements/test.txt
	.venv/bin/python -m pytest

worker:
	.venv/bin/celery -A leo_optima worker -l info

beat:
	.venv/bin/celery -A leo_optima beat -l info
