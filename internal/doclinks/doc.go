// Package doclinks finds references to documents that are not in the
// repository: relative Markdown links whose target is missing, mentions of
// a Markdown file that no tracked file matches, and references to documents
// kept outside the repository at all. `make verify` runs it over every
// tracked text file, so a renamed page or a stale pointer fails CI.
//
// It reads files only; it must not import herald's packages.
package doclinks
