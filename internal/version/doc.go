// Package version holds what a build says about itself: the release
// version and git revision stamped by the Makefile's -ldflags, and the Go
// version it was built with. Every binary prints them for --version, logs
// them at start and exports them as herald_build_info. It imports nothing
// from herald.
package version
