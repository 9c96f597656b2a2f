// Package docref keeps docs/reference.md true to the code. Tests of the
// binaries put their generated text (each command's --help) between
// marker comments in the page with Check, and refresh it with
// HERALD_UPDATE_DOCS=1; this package's own test checks that every
// annotation, condition, reason and Event reason the code defines is
// documented there.
//
// It is test support: nothing shipped imports it.
package docref
