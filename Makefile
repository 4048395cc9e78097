# opsbot: the project's vocabulary. `make help` lists the targets.
# The version comes from git tags (vMAJOR.MINOR.PATCH): stamped into the
# binary, the image's tag and label, and the packaged chart's appVersion.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The chart's own SemVer: the tag without its v, or 0.0.0-dev between tags.
CHART_VERSION ?= $(or $(shell echo '$(VERSION)' | sed -n 's/^v\([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\)$$/\1/p'),0.0.0-dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GOLANGCI_LINT := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
# Inputs per fuzz target, not seconds: Go 1.26's fuzz coordinator can fail
# a duration -fuzztime with a spurious "context deadline exceeded" when it
# ends mid-input on a loaded machine (go.dev/issue/75804, fixed in 1.27).
FUZZTIME ?= 20000x

.PHONY: help run test fuzz deploytest installtest bench lint build dist clean image chart chart-package

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: build ## the bot: the terminal adapter when no chat credentials are set
	./bin/opsbot

test: ## every test, with -race; the namespace tests need root (CI=true: missing tools fail)
	go test -race -count=1 ./...
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory deploytest

deploytest: ## the deploy/ tests: the Helm chart, the container image (buildah, root), the systemd unit
	$(MAKE) --no-print-directory chart
	bash deploy/container/test.sh
	bash deploy/systemd/test.sh

installtest: ## walk every install path that runs here and check what the docs say (deploy/install-paths.sh, root)
	bash deploy/install-paths.sh

fuzz: ## each fuzz target briefly (FUZZTIME=20000x inputs; 30s works too)
	go test -run='^$$' -fuzz='^FuzzSplitWords$$' -fuzztime=$(FUZZTIME) ./bot
	go test -run='^$$' -fuzz='^FuzzCommandArgs$$' -fuzztime=$(FUZZTIME) ./commands
	go test -run='^$$' -fuzz='^FuzzPortLines$$' -fuzztime=$(FUZZTIME) ./commands
	go test -run='^$$' -fuzz='^FuzzDecodeReport$$' -fuzztime=$(FUZZTIME) ./commands
	go test -run='^$$' -fuzz='^FuzzQuote$$' -fuzztime=$(FUZZTIME) ./adapters/sshrun
	go test -run='^$$' -fuzz='^FuzzRecognize$$' -fuzztime=$(FUZZTIME) ./commands/probe
	go test -run='^$$' -fuzz='^FuzzParseStatus$$' -fuzztime=$(FUZZTIME) ./commands/apache
	go test -run='^$$' -fuzz='^FuzzParseConfigTest$$' -fuzztime=$(FUZZTIME) ./commands/apache
	go test -run='^$$' -fuzz='^FuzzParseModules$$' -fuzztime=$(FUZZTIME) ./commands/apache
	go test -run='^$$' -fuzz='^FuzzParseVHosts$$' -fuzztime=$(FUZZTIME) ./commands/apache
	go test -run='^$$' -fuzz='^FuzzParseErrorLog$$' -fuzztime=$(FUZZTIME) ./commands/apache
	go test -run='^$$' -fuzz='^FuzzParseRunConfig$$' -fuzztime=$(FUZZTIME) ./commands/apache
	go test -run='^$$' -fuzz='^FuzzParseSummary$$' -fuzztime=$(FUZZTIME) ./commands/relayd
	go test -run='^$$' -fuzz='^FuzzParseHosts$$' -fuzztime=$(FUZZTIME) ./commands/relayd
	go test -run='^$$' -fuzz='^FuzzParseRedirects$$' -fuzztime=$(FUZZTIME) ./commands/relayd
	go test -run='^$$' -fuzz='^FuzzParseRelays$$' -fuzztime=$(FUZZTIME) ./commands/relayd
	go test -run='^$$' -fuzz='^FuzzParseSessions$$' -fuzztime=$(FUZZTIME) ./commands/relayd
	go test -run='^$$' -fuzz='^FuzzParseMonitor$$' -fuzztime=$(FUZZTIME) ./commands/relayd
	go test -run='^$$' -fuzz='^FuzzParseCheck$$' -fuzztime=$(FUZZTIME) ./commands/relayd
	go test -run='^$$' -fuzz='^FuzzClassify$$' -fuzztime=$(FUZZTIME) ./commands/relayd
	go test -run='^$$' -fuzz='^FuzzReadConf$$' -fuzztime=$(FUZZTIME) ./commands/relayd

bench: build ## opsbot beside nmap and nc, as ratios from one run (root)
	go test -run='^$$' -bench=. -benchtime=1x -count=1 -timeout=30m ./bench

lint: ## gofmt, go vet, golangci-lint
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: the files above need formatting"; exit 1; }
	go vet ./...
	go run $(GOLANGCI_LINT) run ./...

build: ## bin/opsbot for this machine
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/opsbot ./cmd/opsbot

dist: ## static binaries for linux/amd64, linux/arm64, openbsd/amd64 in dist/
	@for t in linux/amd64 linux/arm64 openbsd/amd64; do \
		os=$${t%/*}; arch=$${t#*/}; \
		echo "dist/opsbot-$$os-$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags '$(LDFLAGS)' -o dist/opsbot-$$os-$$arch ./cmd/opsbot || exit 1; \
	done

clean: ## remove build output
	rm -rf bin dist

image: dist ## container image FROM scratch with buildah, no daemon (deploy/container)
	sh deploy/container/rootfs.sh dist/opsbot-linux-$$(go env GOARCH) /etc/ssl/certs/ca-certificates.crt dist/image
	buildah --storage-driver vfs bud --isolation chroot --build-arg VERSION=$(VERSION) -f deploy/container/Dockerfile.prebuilt -t localhost/opsbot:$(VERSION) .

chart: ## the Helm chart's tests: render, lint, decode (deploy/helm, its own module)
	cd deploy/helm && go test -race -count=1 ./...

chart-package: ## dist/opsbot-CHART_VERSION.tgz with appVersion $(VERSION) (the image tag it runs)
	mkdir -p dist
	cd deploy/helm && go run helm.sh/helm/v3/cmd/helm package opsbot --app-version '$(VERSION)' --version '$(CHART_VERSION)' -d ../../dist
