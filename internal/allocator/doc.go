// Package allocator is herald's address bookkeeping: which IPPool addresses
// exist, which Service holds which address, and which address a Service gets
// next.
//
// It is pure logic. It must not import client-go or anything that talks to
// the network or the API server; the controller translates Services and
// IPPools into the small types defined here and turns the typed errors back
// into Events. Keeping it that way lets every allocation rule (docs/design.md#the-controller) be
// tested, fuzzed and benchmarked without a cluster.
//
// Two promises shape the data structures:
//
//   - An address never changes unless the Service's own spec asks for it.
//     Allocate keeps whatever a Service already holds when that still
//     satisfies its spec, even if its pool shrank, overlaps another pool or
//     no longer selects it; Restore records existing assignments before any
//     new address is handed out.
//   - Allocation cost does not grow with pool size or with the number of
//     allocated addresses. Each usable pool keeps its free addresses as a
//     B-tree of disjoint intervals, so taking the lowest free address,
//     taking a requested one and giving one back are O(log intervals), and
//     an IPv6 /64 is never enumerated.
package allocator
