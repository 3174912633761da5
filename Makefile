# LEO Optima. `make run` sets everything up and serves on :8000; `make test` runs the test suite.
.PHONY: setup run test bench worker beat

setup:
	scripts/setup.sh

run:
	scripts/run.sh

test:
	scripts/setup.sh
	.venv/bin/python -m pytest

worker:
	.venv/bin/celery -A leo_optima worker -l info

beat:
	.venv/bin/celery -A leo_optima beat -l info
