// Package chart tests the Helm chart in opsbot/: it renders the templates
// with Helm's own engine, decodes every object strictly into its Kubernetes
// type, runs helm lint, and checks the rendered policy with `opsbot config check`
// built from this repository.
// It is a module of its own so that Helm and the Kubernetes API stay out
// of the bot's build: `cd deploy/helm && go test ./...` (or `make chart`).
package chart
