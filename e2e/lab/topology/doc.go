// Package topology reads the lab's containerlab topology files
// (e2e/topologies/*.clab.yml) and turns them into a plan the lab runner
// builds from network namespaces: which namespaces, which veth pairs, which
// bridge, and the herald.lab/* labels that say what runs where.
//
// It only parses and validates; it must not touch the system (no exec, no
// netlink), so it is testable without root.
package topology
