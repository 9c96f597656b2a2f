// Package ctl is heraldctl: the status and pools views of a running
// herald; import-metallb, which converts MetalLB's custom resources and
// the MetalLB annotations of Services into herald's and lists precisely
// what cannot be carried over; and rotate-key, which replaces the
// speakers' memberlist key step by step. Only rotate-key writes to the
// API (the memberlist key Secret). The package must not import
// internal/controller, internal/speaker, internal/testcluster or any
// networking package; cmd/heraldctl only hands it the process's arguments
// and streams.
package ctl
