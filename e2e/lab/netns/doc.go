// Package netns runs commands in, and opens connections from, the named
// network namespaces the lab creates (`ip netns`). It shells out to
// iproute2 for everything that changes the system, so every step can be
// replayed by hand, and uses setns(2) only to dial, listen or run a function in a namespace.
//
// It must not import the lab's topology or Kubernetes packages.
package netns
