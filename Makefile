# anycast-ctl: every target sets up what it needs, so a fresh machine only needs `make`.
SHELL := /bin/bash
VENV ?= .venv
# The venvs are made from Debian's interpreter, not the first python3 on PATH: the lab runs
# ExaBGP and the agent as user anycast-ctl, which must be able to execute the venvs'
# interpreter (a pyenv or other build under /root, mode 0700, it cannot). Debian's python3 makes
# venvs only with python3-venv (ensurepip): see venv_python below.
PYTHON ?= /usr/bin/python3
VENV_PYTHON_PACKAGE := python3-venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# A second venv with ExaBGP 4.2 alone: the end-to-end tests run the agent (from $(VENV)) under
# both ExaBGP 4.2 and 5.0 against real FRR. Pinned to the last 4.2 release.
EXABGP42_VENV ?= .venv-exabgp42
EXABGP42 := exabgp==4.2.25
# The dedicated user ExaBGP and the agent run as (docs/systemd.md); the lab runs them as it too.
SERVICE_USER := anycast-ctl
APT_PACKAGES := frr haproxy iproute2 procps openssl nftables
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)
# promtool (checks and unit tests of docs/monitoring/alerts.yml) ships in Debian's prometheus
# package, whose install enables and starts a prometheus service: see sysdeps.
PROMTOOL_PACKAGE := prometheus
PROMTOOL ?= promtool
POLICY_RC_D ?= /usr/sbin/policy-rc.d

.PHONY: all setup venv venv-exabgp42 service-user sysdeps lint test test-images unit integration demo bench images images-sysdeps clean

all: test

# $(PYTHON) must make venvs: when it lacks ensurepip (Debian's python3 without python3-venv),
# root installs $(VENV_PYTHON_PACKAGE) and says so; anyone else is told what to install.
define venv_python
	@if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
	  if [ ! -x $(PYTHON) ]; then \
	    echo "no $(PYTHON): install Debian's python3 (or set PYTHON=an interpreter user $(SERVICE_USER) can run)"; exit 2; \
	  elif [ "$(IS_ROOT)" = yes ]; then \
	    echo "installing with apt-get: $(VENV_PYTHON_PACKAGE) ($(PYTHON) has no ensurepip, so no venv)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(VENV_PYTHON_PACKAGE) || exit 1; \
	  else \
	    echo "$(PYTHON) cannot make a venv (no ensurepip): install $(VENV_PYTHON_PACKAGE) as root"; exit 2; \
	  fi; \
	fi
endef

# A venv made from another interpreter (the python3 on PATH, before PYTHON was used) is made
# again from $(PYTHON): its stamp, named after the interpreter, is missing.
define make_venv
	@if [ -e $(1)/bin/python ] && [ "$$(readlink -f $(1)/bin/python)" != "$$(readlink -f $(PYTHON))" ]; then \
	  echo "$(1) was made from $$(readlink -f $(1)/bin/python); making it again from $(PYTHON)"; \
	  $(PYTHON) -m venv --clear $(1); \
	else \
	  $(PYTHON) -m venv $(1); \
	fi
endef

PYTHON_STAMP := $(subst /,-,$(patsubst /%,%,$(PYTHON)))
VENV_STAMP := $(VENV)/.installed-$(PYTHON_STAMP)
$(VENV_STAMP): pyproject.toml
	$(venv_python)
	$(call make_venv,$(VENV))
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Byte-compiled up front: the agent is restarted with ExaBGP, and a module compiled at every
# start costs its start-up CPU (this environment may set PYTHONDONTWRITEBYTECODE, which stops
# the interpreter from ever writing them; and the lab's agent runs as user anycast-ctl, which
# cannot write them in this checkout). Only modules changed since their last compile.
venv: $(VENV_STAMP)
	@$(PY) -m compileall -q anycast_ctl >/dev/null

# The stamp names the pin, so changing the pin reinstalls; otherwise this costs nothing.
EXABGP42_STAMP := $(EXABGP42_VENV)/.installed-$(subst ==,-,$(EXABGP42))-$(PYTHON_STAMP)
$(EXABGP42_STAMP):
	$(venv_python)
	$(call make_venv,$(EXABGP42_VENV))
	$(EXABGP42_VENV)/bin/pip install -q --upgrade pip
	$(EXABGP42_VENV)/bin/pip install -q '$(EXABGP42)'
	touch $@

venv-exabgp42: $(EXABGP42_STAMP)

# The system user of docs/systemd/anycast-ctl.sysusers.conf, created only when missing (root
# only): the lab runs ExaBGP and the agent as this user with CAP_NET_ADMIN alone, as the unit
# does. Nothing else of the host changes.
service-user:
ifeq ($(IS_ROOT),yes)
	@if ! getent passwd $(SERVICE_USER) >/dev/null; then \
	  echo "creating system user $(SERVICE_USER) (useradd --system; no home, no login shell): ExaBGP and the agent run as it"; \
	  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
	    --user-group --comment "anycast-ctl agent and ExaBGP" $(SERVICE_USER); \
	fi
else
	@echo "not root: not creating user $(SERVICE_USER); the lab's privilege tests will be skipped"
endif

# System daemons for the lab and the end-to-end tests; only root can install them.
# The lab runs its own FRR and HAProxy per namespace and never needs the system services.
# Debian starts them as services when it installs them; only a service this target has just
# installed is stopped and disabled (it was not running before `make`). An FRR or HAProxy
# that was already installed is left exactly as it was, running or not.
sysdeps:
ifeq ($(IS_ROOT),yes)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "installing with apt-get:$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing || exit 1; \
	for svc in frr haproxy; do \
	  case " $$missing " in *" $$svc "*) \
	    echo "$$svc: installed now; its system service (started by the package) is stopped and disabled: the lab runs its own per namespace"; \
	    systemctl disable --now $$svc >/dev/null 2>&1 || true ;; \
	  esac; \
	done; \
	for svc in frr haproxy; do \
	  case " $$missing " in *" $$svc "*) ;; *) echo "$$svc: already installed; its system service left as it was" ;; esac; \
	done
	@# Only when promtool is missing: install prometheus with a policy-rc.d that forbids starting
	@# services (unless the host has its own, which is left alone), then disable the unit it
	@# added, so no service of the host runs or starts that did not before.
	@if ! command -v $(PROMTOOL) >/dev/null 2>&1; then \
	  echo "apt-get install $(PROMTOOL_PACKAGE) (for promtool; its prometheus service is kept from starting by policy-rc.d, then disabled)"; \
	  own_policy=""; \
	  if [ ! -e $(POLICY_RC_D) ]; then \
	    printf '#!/bin/sh\nexit 101\n' > $(POLICY_RC_D) && chmod 755 $(POLICY_RC_D) && own_policy=yes; \
	  fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(PROMTOOL_PACKAGE); \
	  status=$$?; \
	  if [ -n "$$own_policy" ]; then rm -f $(POLICY_RC_D); fi; \
	  if [ -d /run/systemd/system ]; then systemctl disable prometheus >/dev/null 2>&1 || true; fi; \
	  exit $$status; \
	fi
else
	@echo "not root: skipping apt packages ($(APT_PACKAGES) $(PROMTOOL_PACKAGE)); root-only and promtool tests will be skipped"
endif

setup: venv venv-exabgp42 sysdeps service-user

# Style, import boundaries and types; `make test` runs it first, so a finding fails CI.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup lint test-images
	$(BIN)/pytest -q -ra

# As root, the suite deploys the containerlab rendering with podman, from images of this very
# tree. A failed image build does not stop the suite: it is said here, its reason is kept in
# $(IMAGES_UNAVAILABLE), and the podman deployment test skips with that reason.
IMAGES_UNAVAILABLE := build/images/unavailable
test-images:
ifeq ($(IS_ROOT),yes)
	@mkdir -p build/images; rm -f $(IMAGES_UNAVAILABLE); \
	echo "make images (log: build/images/make.log)"; \
	if ! $(MAKE) --no-print-directory images >build/images/make.log 2>&1; then \
	  tail -15 build/images/make.log; \
	  echo "make images failed (see build/images/make.log): the podman deployment test will be skipped" | tee $(IMAGES_UNAVAILABLE); \
	fi
endif

unit: venv
	$(BIN)/pytest -q -ra tests/unit tests/golden

demo: setup
	$(BIN)/anycast-ctl demo

# QUICK=1: every bench and failover scenario once, fewer flows (a few minutes, not twenty-odd).
bench: setup
	$(BIN)/python -m bench $(if $(QUICK),--quick)

# Container images for the containerlab rendering (lab/default) and the podman deployment test:
# anycast-ctl-{host,lb,router}:$(IMAGE_TAG), from a debootstrapped bookworm base (cached in
# build/images/base.tar) and a wheelhouse; no container registry. `make test` builds them as
# root (test-images above): a minute or two once the base is cached.
IMAGE_APT := podman runc debootstrap
PODMAN_UNITS := podman.socket podman.service podman-restart.service podman-auto-update.timer podman-auto-update.service
IMAGE_TAG ?= latest
# The Debian archive the host's apt already uses (its first .../debian URI), so the images are
# built from the same archive as the host's FRR and HAProxy; override with DEBIAN_MIRROR=URL.
DEBIAN_MIRROR ?= $(shell images/host-mirror.sh)
export CONTAINERS_CONF := $(CURDIR)/images/containers.conf

images-sysdeps:
ifeq ($(IS_ROOT),yes)
	@missing=""; for p in $(IMAGE_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "installing with apt-get:$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing || exit 1; \
	case " $$missing " in *" podman "*) \
	  echo "podman: installed now; the units its package enabled (API socket, restart at boot) are disabled: images and labs call podman directly"; \
	  systemctl disable --now $(PODMAN_UNITS) >/dev/null 2>&1 || true ;; \
	esac
else
	@echo "make images needs root (debootstrap, rootful podman)"; exit 2
endif

images: venv images-sysdeps
	time images/build.sh build/images $(BIN)/pip $(IMAGE_TAG) $(DEBIAN_MIRROR)

clean:
	rm -rf $(VENV) $(EXABGP42_VENV) build *.egg-info
