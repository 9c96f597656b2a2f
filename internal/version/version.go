package version

// Version is set at build time; "dev" for a plain `go build`.
var Version = "dev"
