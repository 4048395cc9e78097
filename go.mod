module github.com/opsbot/opsbot

go 1.26.8

require (
	github.com/goccy/go-yaml v1.19.2
	github.com/kelseyhightower/envconfig v1.4.0
	github.com/stretchr/testify v1.12.1
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
	golang.org/x/time v0.16.0
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect
