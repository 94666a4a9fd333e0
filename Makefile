# balloond entry points. Every target installs what it needs itself (scripts/bootstrap.sh).
.PHONY: demo test lint unit e2e e2e-xen bench clean deb test-floor test-install man pictures chaos

VENV := .venv/bin

# The demo and nothing else: bootstrap is quiet (its log is .cache/bootstrap.log).
demo:
	@scripts/bootstrap.sh demo
	@$(VENV)/balloond demo $(ARGS)

# Lint, the whole suite, the unit tests again against Debian 12's library versions, and the
# .debs built and installed into a clean Debian 12 root.
test:
	@scripts/bootstrap.sh test
	$(VENV)/ruff check balloond tests bench e2e guest-agent chaos
	$(VENV)/ruff format --check balloond tests bench e2e guest-agent chaos
	$(VENV)/mypy
	cd guest-agent && ../$(VENV)/mypy
	$(VENV)/python -m pytest $(PYTEST_ARGS)
	$(VENV)/python -m chaos
	@scripts/floor-test
	@$(MAKE) --no-print-directory test-install

# Issue 16's attacks and faults replayed against a running daemon on sim:// and test:///,
# from outside (loopback, private sockets): one table, about 2 minutes (docs/security.md).
chaos:
	@scripts/bootstrap.sh test
	$(VENV)/python -m chaos $(ARGS)

# Debian packages with Debian's tools: dist/deb/balloond_*.deb, dist/deb/balloond-guest_*.deb
deb:
	@scripts/build-deb

test-floor:
	@scripts/floor-test $(PYTEST_ARGS)

test-install: deb
	@scripts/bootstrap.sh test
	@$(VENV)/python -m e2e.install_test dist/deb/*.deb

# The README's picture of balloonctl top, drawn by its own renderer (a test holds it current)
pictures:
	@scripts/bootstrap.sh test
	@$(VENV)/python -m balloond.bench.pictures --out docs/img/balloonctl-top.svg

# The man pages and shell completion as the package builds them, to read: build/man/
man:
	@scripts/bootstrap.sh test
	@$(VENV)/python -m balloond.cli.docgen --out build/man >/dev/null
	@ls build/man/*/*

lint:
	@scripts/bootstrap.sh test
	$(VENV)/ruff check balloond tests bench e2e guest-agent chaos
	$(VENV)/ruff format --check balloond tests bench e2e guest-agent chaos
	$(VENV)/mypy
	cd guest-agent && ../$(VENV)/mypy

unit:
	@scripts/bootstrap.sh test
	$(VENV)/python -m pytest -m "not realvm" $(PYTEST_ARGS)

e2e:
	@scripts/bootstrap.sh test
	$(VENV)/python -m pytest -m realvm -v $(PYTEST_ARGS)

e2e-xen:
	@scripts/bootstrap.sh test
	$(VENV)/python -m pytest -m xen -v $(PYTEST_ARGS)

bench:
	@scripts/bootstrap.sh test
	$(VENV)/balloond bench bench/scenarios/*.yaml --out bench/results
	$(VENV)/python bench/scale.py

clean:
	rm -rf .venv .cache .pytest_cache .mypy_cache .ruff_cache
