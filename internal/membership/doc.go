// Package membership is a speaker's place in the cluster of all speakers:
// it wraps hashicorp/memberlist with herald's timing defaults (chosen for
// sub-second failover, see timing.go), publishes the node's metadata (its
// health, meta.go) for the others, re-joins known peers so that partitions
// heal quickly (rejoin.go), carries memberlist's traffic over its own
// transport (transport.go) and bridges memberlist's logger into slog.
//
// It reports who is alive and what each member published; deciding who
// announces what from that is internal/election's job, and reading Node
// objects to find the peers is the speaker's. It must not import client-go
// or any herald package but those pure ones.
package membership
