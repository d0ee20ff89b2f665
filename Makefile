# xfer — see README.md. `make test` and `make demo` install what they need.
GO      ?= go
FUZZTIME ?= 20s
BIN     := bin/xfer
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Debian packages the tests and the demo run: the XMPP server and the
# independent peer.
DEB_PKGS := prosody python3-slixmpp ejabberd
DEB_PKGS += libervia-backend libervia-cli

.PHONY: all build deps check test test-short bench bench-wan fuzz demo vet clean man interop soak

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/xfer

# Installs the Debian packages when missing (as root, via apt-get).
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "missing Debian packages:$$missing — run 'sudo apt-get install$$missing' or 'make test' as root" >&2; exit 1; \
		fi; \
	fi
	@# Debian starts a system-wide prosody on install; the tests run their own.
	$(GO) mod download

vet:
	$(GO) vet ./...

# go.mod must be tidy, and the command must build for the other systems
# users run it on (the build tags for Statfs and O_NOFOLLOW).
check: vet
	$(GO) mod tidy -diff
	GOOS=windows $(GO) build -o /dev/null ./cmd/xfer
	GOOS=darwin $(GO) build -o /dev/null ./cmd/xfer

test: deps check
	$(GO) test -count=1 -timeout 30m ./...
	@# The transfer integration tests once more, against ejabberd.
	XFER_TEST_SERVER=ejabberd $(GO) test -count=1 -timeout 30m ./internal/transfer/

# Unit tests only (no servers).
test-short:
	$(GO) test -short ./...

# SI and Jingle, over SOCKS5 (direct, proxy65) and in-band, through a private
# Prosody, next to raw TCP and SOCKS5 copies of the same files, with CPU and
# peak memory per side (tools/bench); plus the in-process Go benchmarks,
# once each (no servers).
bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime 1x ./internal/ibb
	$(GO) run ./tools/bench

# The same ways on emulated WAN links (RTT 0/20/80 ms, loss 0/0.5 %): Prosody,
# sender and receiver in network namespaces the bench creates and removes,
# the links emulated in user space (tools/bench/internal/wanlink). Needs root;
# skips otherwise. A few minutes.
bench-wan: deps build
	$(GO) run ./tools/bench -wan

fuzz:
	@for pkg in $$($(GO) list ./internal/...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

demo: deps build
	$(GO) run ./tools/demo

# Man pages from the command tree (the hidden "xfer gen-man DIR"), into man/;
# generated, not committed. Try: man -l man/xfer.1
man:
	rm -rf man
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/xfer gen-man man

# The interoperability matrix: {Prosody, ejabberd} x {S5B direct, S5B proxy,
# IBB} x {xfer -> xfer, xfer -> slixmpp, slixmpp -> xfer}, printed as a table.
interop: deps
	XFER_INTEROP_TABLE=1 $(GO) test -count=1 -timeout 10m -run Matrix -v ./internal/interop/

clean:
	rm -rf bin

# The receiver as a service under load (part of make test too): 200
# transfers by every method from 3 senders, the server killed in the
# middle; prints the counts, goroutines, open files and RSS.
soak: deps
	$(GO) test -count=1 -v -run Soak ./internal/soak/
