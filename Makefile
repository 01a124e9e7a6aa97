# locksim — run `make` (or `make help`) for the list of targets.
GO       ?= go
PKGS     ?= ./...
ARGS     ?=
.DEFAULT_GOAL := help

.PHONY: help
help: ## list every target with a one-line description
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## boot the sandbox (3 etcd members, lock servers, balancer, clients); Ctrl-C stops it (ARGS="--clients 5" to pass flags)
	$(GO) run . up $(ARGS)

.PHONY: test
test: ## run every test with the race detector: unit, sandbox, scenario catalogue, negative controls, graded example lock servers
	$(GO) test -race -count=1 -timeout 25m $(PKGS)

.PHONY: build
build: ## build the locksim binary into ./locksim
	$(GO) build -o locksim .

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

.PHONY: scenarios
scenarios: build ## run the whole scenario catalogue headless into ./out
	./locksim run --out out scenarios/*.yaml

.PHONY: clean
clean: ## remove build output and run folders
	rm -rf locksim out

.PHONY: controls
controls: ## negative controls on 20 seeds (and every safe scenario on 3), and the buggy Python lock server on 20: prints how often each violation was caught
	$(GO) test -race -count=1 -timeout 90m ./run -run TestNegativeControlRate -v -seeds 20 | grep -E 'runs=|^(ok|FAIL|---)'
	$(GO) test -race -count=1 -timeout 30m ./grade -run TestBuggyCatchRate -v -seeds 20 | grep -E 'runs=|^(ok|FAIL|---)'

LOCKSERVER ?= python3 examples/python/lockserver.py --listen {listen} --etcd {etcd} --name {name}
.PHONY: grade
grade: build ## grade a lock server (LOCKSERVER="CMD {listen} {etcd} {name}", default the Python example) on the safe catalogue into ./out/grade
	./locksim grade --out out/grade --lockserver-cmd "$(LOCKSERVER)" $(ARGS)

FUZZTIME ?= 1m
.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 1m): request decoding, scenario parser, history parser
	$(GO) test -run '^$$' -fuzz FuzzParseRequests -fuzztime $(FUZZTIME) ./lockserver
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./scenarios
	$(GO) test -run '^$$' -fuzz FuzzReadJSONL -fuzztime $(FUZZTIME) ./history

.PHONY: soak
soak: build ## 10 minutes of seeded random faults with fencing on (scenarios/soak/soak-10m.yaml) into ./out
	./locksim run --out out scenarios/soak/soak-10m.yaml

MEMORY ?= 30m
.PHONY: memory
memory: ## `locksim up` with a busy workload and a viewer for MEMORY (default 30m): prints the live heap floor and peak a minute, fails unless the floors stay within ±20 %
	LOCKSIM_MEMORY=$(MEMORY) $(GO) test -count=1 -timeout 0 -run TestUpMemoryStaysFlat -v . | grep -E 'memory_test|^(ok|FAIL|---)'

.PHONY: bench
bench: ## benchmarks: raw etcd vs lock server vs balancer vs haproxy vs etcd Mutex, failover, scale, checker (ARGS="--quick"; writes bench.json)
	$(GO) run . bench --json bench.json $(ARGS)
