# balloond entry points. Every target installs what it needs itself (scripts/bootstrap.sh).
.PHONY: demo test lint unit e2e bench clean

VENV := .venv/bin

demo:
	@scripts/bootstrap.sh demo
	$(VENV)/balloond demo $(ARGS)

test:
	@scripts/bootstrap.sh test
	$(VENV)/ruff check balloond tests bench e2e guest-agent
	$(VENV)/ruff format --check balloond tests bench e2e guest-agent
	$(VENV)/mypy
	cd guest-agent && ../$(VENV)/mypy
	$(VENV)/python -m pytest $(PYTEST_ARGS)

lint:
	@scripts/bootstrap.sh test
	$(VENV)/ruff check balloond tests bench e2e guest-agent
	$(VENV)/ruff format --check balloond tests bench e2e guest-agent
	$(VENV)/mypy
	cd guest-agent && ../$(VENV)/mypy

unit:
	@scripts/bootstrap.sh test
	$(VENV)/python -m pytest -m "not realvm" $(PYTEST_ARGS)

e2e:
	@scripts/bootstrap.sh test
	$(VENV)/python -m pytest -m realvm -v $(PYTEST_ARGS)

bench:
	@scripts/bootstrap.sh test
	$(VENV)/balloond bench bench/scenarios/*.yaml --out bench/results
	$(VENV)/python bench/scale.py

clean:
	rm -rf .venv .cache .pytest_cache .mypy_cache .ruff_cache
