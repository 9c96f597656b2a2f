// Package version holds the build's version string, stamped by the
// Makefile's -ldflags so every binary and its User-Agent say what they are.
// It imports nothing.
package version
