# aioconn — build, test, benchmark and fuzz targets. `make test` is what CI runs (.ci/run).
GO      ?= go
BIN     ?= bin/aioconn
PKGS    ?= ./...
FUZZTIME ?= 20s
# Shrinking an interesting input may take 60 s by default, which eats short runs of the targets
# that write files or open sockets: bound it.
FUZZMIN ?= 200x

.PHONY: build test lint vet fmtcheck bench fuzz demo clean

## build: one static binary (no cgo: nothing to install beside it).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/aioconn

## test: gofmt check, go vet, and the whole suite with the race detector (golden, fuzz seeds,
## integration); then the Go API and unix-socket packages once more without it, since -race
## builds keep the API's connections on net's own system calls (uds.Wrap).
test: lint
	$(GO) test -race -count=1 $(PKGS)
	$(GO) test -count=1 ./uds/ ./api/

lint: fmtcheck vet

fmtcheck:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## bench: every Go benchmark once per package (numbers go to benchmarks/RESULTS.md by hand).
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## fuzz: each fuzz target for FUZZTIME.
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) $$pkg || exit 1; \
	  done; \
	done

## demo: build, then run a server and a client connector with two small apps exchanging messages.
demo: build
	./scripts/demo.sh

clean:
	rm -rf bin
