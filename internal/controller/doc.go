// Package controller is herald-controller's logic: it turns Services and
// IPPools into allocator calls and writes the results back as Service
// status, the herald.dev/pool-allocated annotation, IPPool status,
// finalizers and Events.
//
// Informers only enqueue keys; one typed work queue feeds a few workers.
// The allocator is global state, so every call into it holds one mutex,
// while API writes happen outside it. Before any worker starts, Run
// replays every existing Service status into the allocator, so no address
// is handed out that an existing Service already holds (the ordering
// MetalLB lost and had to restore by hand).
//
// It must not import networking packages (netlink, arp, ndp, gobgp) nor
// internal/testcluster.
package controller
