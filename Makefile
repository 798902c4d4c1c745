# bt-lua: a BitTorrent engine with a C core and Lua policies.
# `make help` lists the targets. Every target that needs a package installs it first (deps).

LUA_PC    ?= lua5.4
LUA       ?= lua5.4
BUSTED    ?= busted
LUACHECK  ?= luacheck
CC        ?= gcc
CXX       ?= g++
CFLAGS    ?= -O2 -g
WARN      := -Wall -Wextra -Werror
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 2
# `make fuzz FUZZ_CPU_SECONDS=1200`: runs of FUZZ_SECONDS until each target had this much CPU.
FUZZ_CPU_SECONDS ?=
# `make fuzz FUZZ_TARGETS="ranges wire"`: only these targets (with or without _fuzz).
FUZZ_TARGETS ?=

# Debian packages the build, the tests, the benchmarks and the demo use (gnuplot-nox: the lab's
# plots, docs/lab.md).
DEB_PKGS := make gcc g++ pkg-config lua5.4 liblua5.4-dev libev-dev libcurl4-openssl-dev libssl-dev \
            lua-busted lua-argparse lua-cjson lua-socket lua-term luarocks lua-check \
            clang libclang-rt-14-dev opentracker aria2 transmission-cli transmission-daemon \
            mktorrent python3-libtorrent libtorrent-rasterbar-dev hyperfine time strace iproute2 ca-certificates \
            gnuplot-nox

# Evaluated when a recipe runs (after deps), not when the Makefile is read.
PKG_CFLAGS = $(shell pkg-config --cflags $(LUA_PC) libcurl libcrypto)
PKG_LIBS   = $(shell pkg-config --libs libcurl libcrypto) -lev

# csrc/ is in layers, one folder each (docs/architecture.md): core, codec, storage, engine, lua.
SRCS    := $(wildcard csrc/*/*.c)
HDRS    := $(wildcard csrc/*/*.h)
# The pure C layers (core and codec: no I/O, no Lua, no libev): what the fuzzers link.
PURE    := $(wildcard csrc/core/*.c) $(filter-out csrc/codec/mse.c,$(wildcard csrc/codec/*.c))
MODULE  := build/bt/core.so
ASAN_MODULE := build/asan/bt/core.so
FUZZERS := $(patsubst fuzz/%.c,build/fuzz/%,$(wildcard fuzz/*_fuzz.c))
FUZZ_RUN := $(if $(strip $(FUZZ_TARGETS)),$(patsubst %,%_fuzz,$(patsubst %_fuzz,%,$(FUZZ_TARGETS))),$(notdir $(FUZZERS)))
ifneq ($(filter fuzz,$(MAKECMDGOALS)),)
ifneq ($(filter-out $(notdir $(FUZZERS)),$(FUZZ_RUN)),)
$(error FUZZ_TARGETS: no fuzz target $(filter-out $(notdir $(FUZZERS)),$(FUZZ_RUN)); there are $(notdir $(FUZZERS)))
endif
endif
BENCH_BINS := $(patsubst bench/%.cpp,build/bench/%,$(wildcard bench/*.cpp)) \
              $(patsubst bench/%.c,build/bench/%,$(wildcard bench/*.c))

SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ASAN_PRELOAD = $(shell $(CC) -print-file-name=libasan.so) $(shell $(CC) -print-file-name=libubsan.so)

export LUA_PATH_5_4  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;
export LUA_CPATH_5_4 := $(CURDIR)/build/?.so;;

.PHONY: all help deps test lint unit fuzz-smoke asan fuzz bench demo demo-swarm lab env clean

all: deps $(MODULE)

help:
	@echo "make          build the Lua module build/bt/core.so"
	@echo "make test     build, lint, a short fuzz smoke, then every spec with busted on Lua 5.4"
	@echo "make lint     luacheck over the Lua code (settings in .luacheckrc) and the C layer check; fails on any finding"
	@echo "make asan     the specs again with the module built under ASan+UBSan; fails on any report"
	@echo "make fuzz     run each libFuzzer target (or FUZZ_TARGETS=\"a b\") for FUZZ_SECONDS (default 60), with a summary"
	@echo "make bench    benchmarks, each against a reference measured in the same run"
	@echo "make demo     the main job: a one-minute lab run, rarest first against random with a seed that leaves early"
	@echo "make demo-swarm  a local swarm of bt-lua alone, one leecher per example policy, checked byte for byte"
	@echo "make lab SCENARIO=examples/lab/X.lua [RUNS=3] [SEED=1] [OUT=dir]  the strategy lab (docs/lab.md)"
	@echo "make deps     install missing Debian packages (apt-get; sudo when not root)"
	@echo "make env      print the exports that let lua5.4 find this checkout's bt: eval \"\$$(make -s env)\""
	@echo "make clean    remove build products"

# Installs only what is missing, so it costs one dpkg-query when all is there.
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(MODULE): $(SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -Icsrc -fPIC -fvisibility=hidden -shared $(PKG_CFLAGS) -o $@ $(SRCS) $(PKG_LIBS)

$(ASAN_MODULE): $(SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SANITIZE) $(WARN) -Icsrc -fPIC -fvisibility=hidden -shared $(PKG_CFLAGS) -o $@ $(SRCS) $(PKG_LIBS)

test: all
	$(MAKE) --no-print-directory lint fuzz-smoke unit

# Lua files to lint: scripts/bt-lua has no .lua extension, so it is named explicitly.
LINT_LUA := lua examples scripts scripts/bt-lua spec $(wildcard bench/*.lua)

# luacheck exits non-zero on any warning or error, which fails the target; so does the
# layer check (scripts/check_layers.lua: a C file includes only its own header and
# headers below it in csrc/'s layer order).
lint: deps
	$(LUACHECK) --quiet --codes $(LINT_LUA)
	$(LUA) scripts/check_layers.lua

# BT_BIND: every bt-lua a spec starts listens on 127.0.0.1 only (--bind's default).
# BT_MAX_PER_IP=0: every peer of a spec is on 127.0.0.1, one host; lift the per-host cap.
# BT_DHT_BOOTSTRAP empty: a DHT node of a spec never asks the public routers (docs/dht.md).
unit:
	BT_BIND=127.0.0.1 BT_MAX_PER_IP=0 BT_DHT_BOOTSTRAP= $(BUSTED) --lua=$(LUA) spec

# $(MODULE) too: a spec runs `make -s env` (which builds it when stale) with the sanitizer
# preloaded, and cc1 under ASan crashes
asan: deps $(MODULE) $(ASAN_MODULE)
	BT_CPATH='$(CURDIR)/build/asan/?.so' LUA_CPATH_5_4='$(CURDIR)/build/asan/?.so;;' LD_PRELOAD='$(ASAN_PRELOAD)' \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  BT_BIND=127.0.0.1 BT_MAX_PER_IP=0 BT_DHT_BOOTSTRAP= $(BUSTED) --lua=$(LUA) spec

# mse_fuzz compiles mse.c into itself (it calls its statics): rebuild it when it changes
build/fuzz/mse_fuzz: csrc/codec/mse.c
build/fuzz/%: fuzz/%.c $(PURE) $(HDRS)
	@mkdir -p $(dir $@)
	clang -O1 -g $(WARN) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Icsrc -o $@ $< $(PURE) -lcrypto

# scripts/fuzz.sh runs each target for the given seconds from its seed corpus in
# fuzz/corpus/NAME (new inputs go to build/corpus/NAME), prints a summary line per target
# and fails on a crash with the reproducer's path ("Fuzzing" in docs/architecture.md).
fuzz-smoke: deps $(FUZZERS)
	@scripts/fuzz.sh $(FUZZ_SMOKE_SECONDS) $(notdir $(FUZZERS))

fuzz: deps $(addprefix build/fuzz/,$(FUZZ_RUN))
	@FUZZ_CPU_SECONDS=$(FUZZ_CPU_SECONDS) scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_RUN)

build/bench/%: bench/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) -O2 -std=c++17 -o $@ $< $$(pkg-config --cflags --libs libtorrent-rasterbar)

# C benchmark programs link the pure layer directly.
build/bench/%: bench/%.c $(PURE) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) -O2 -g $(WARN) -Icsrc -o $@ $< $(PURE) -lcrypto

bench: all $(BENCH_BINS)
	@for f in bench/*_bench.lua; do BT_BENCH_BIN=$(CURDIR)/build/bench $(LUA) $$f || exit 1; done

# The lab's outputs (runs.jsonl, summary.md, plots) go under build/lab/NAME unless OUT is given.
DEMO_RUNS ?= 1
# Seed 2: over seeds 1-3 random piece selection lost pieces on 2 and 3; on seed 1 its leechers
# all finished, later than rarest first's (docs/lab.md, "The demo").
DEMO_SEED ?= 2
demo: all
	$(LUA) scripts/bt-lua lab examples/lab/demo.lua --runs $(DEMO_RUNS) --seed $(DEMO_SEED) --out build/lab/demo

demo-swarm: all
	$(LUA) scripts/demo.lua

RUNS ?= 3
SEED ?= 1
lab: all
	@test -n "$(SCENARIO)" || { echo "make lab SCENARIO=examples/lab/NAME.lua [RUNS=3] [SEED=1] [OUT=dir]"; exit 2; }
	$(LUA) scripts/bt-lua lab $(SCENARIO) --runs $(RUNS) --seed $(SEED) --out $(or $(OUT),build/lab/$(basename $(notdir $(SCENARIO))))

# For running Lua programs against the checkout (examples/library.lua): eval "$(make -s env)"
env: all
	@echo "export LUA_PATH_5_4='$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;'"
	@echo "export LUA_CPATH_5_4='$(CURDIR)/build/?.so;;'"

clean:
	rm -rf build $(MODULE)
