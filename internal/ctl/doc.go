// Package ctl is heraldctl: the status and pools views of a running
// herald, and import-metallb, which converts MetalLB's custom resources
// and the MetalLB annotations of Services into herald's and lists
// precisely what cannot be carried over. It reads the API (never writes to
// it) and must not import internal/controller, internal/speaker,
// internal/testcluster or any networking package; cmd/heraldctl only hands
// it the process's arguments and streams.
package ctl
