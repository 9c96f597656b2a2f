package election

import (
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"
)

// NodeInfo is what the election needs to know about one node. The speaker
// fills it from the Node object and from Cluster.Members.
type NodeInfo struct {
	// Name is the Kubernetes Node name, which is also the memberlist name.
	Name string
	// Labels are the Node's labels, matched against a pool's nodeSelector.
	Labels map[string]string
	// NetworkUnavailable is true while the Node condition
	// NetworkUnavailable is True.
	NetworkUnavailable bool
	// Excluded is true when the Node carries the label
	// node.kubernetes.io/exclude-from-external-load-balancers (any value).
	Excluded bool
	// Alive is true while the node is a live memberlist member.
	Alive bool
	// Healthy is the node's self-reported health from its memberlist
	// metadata (announcing interface up, kube-proxy healthy).
	Healthy bool
	// InterfacesDown are the interfaces named by layer-2 pools that the
	// node reports it cannot answer on (down or absent), sorted;
	// InterfacesUnlisted says it had more than it could publish, and
	// then counts as unable to answer on any named interface.
	InterfacesDown     []string
	InterfacesUnlisted bool
}

// CanAnswerOn reports whether the node can answer on at least one of
// names, a layer-2 pool's interfaces (not empty).
func (n *NodeInfo) CanAnswerOn(names []string) bool {
	if n.InterfacesUnlisted {
		return false
	}
	for _, name := range names {
		if _, down := slices.BinarySearch(n.InterfacesDown, name); !down {
			return true
		}
	}
	return false
}

// Candidates returns the names of the nodes that may announce an address:
// alive, healthy, not excluded, network available, matched by sel (a nil or
// empty selector matches every node) and, when local is not nil, listed as
// true in local.
//
// local is nil for externalTrafficPolicy Cluster. For Local it holds the
// nodes that have a ready or serving endpoint of the Service; an empty,
// non-nil map therefore yields no candidates and the address is not
// announced at all.
//
// The result is a new slice, sorted and without duplicates; nodes is never
// modified or reordered.
func Candidates(nodes []NodeInfo, sel labels.Selector, local map[string]bool) []string {
	matchAll := sel == nil || sel.Empty()
	out := make([]string, 0, len(nodes))
	for i := range nodes {
		n := &nodes[i]
		switch {
		case !n.Alive, !n.Healthy, n.Excluded, n.NetworkUnavailable:
			continue
		case local != nil && !local[n.Name]:
			continue
		case !matchAll && !sel.Matches(labels.Set(n.Labels)):
			continue
		}
		out = append(out, n.Name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// FNV-1a 64-bit parameters (hash/fnv), inlined so that Score neither
// allocates nor goes through an interface: Owner runs it once per candidate
// per address, 10⁶ times for 10 000 Services over 100 nodes.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// Score is the rendezvous (highest random weight) score of node for key.
//
// Compatibility contract: every speaker in a cluster must compute the same
// scores, including during a rolling upgrade between herald versions, or
// two nodes announce the same address. Changing anything below moves
// addresses between nodes and requires a new, explicitly versioned scheme.
// The golden test in election_test.go pins it.
//
// The hashed input is the byte string
//
//	node (UTF-8 bytes, as given) || 0x00 || key.Unmap().AsSlice()
//
// that is, the name, one zero byte (Kubernetes node names never contain
// NUL, so distinct (node, key) pairs give distinct inputs), then the
// address in network byte order: 4 bytes for IPv4 (an IPv4-mapped IPv6
// address is hashed as its IPv4 form), 16 bytes for IPv6. The zone of an
// IPv6 address is ignored; the invalid Addr contributes no bytes. The score
// is FNV-1a 64 of that input followed by the MurmurHash3 fmix64 finalizer:
// FNV-1a alone mixes the last bytes poorly, so sequential addresses and
// node names differing in one character (node-1, node-2) would give
// correlated scores and an uneven spread; fmix64 gives full avalanche at a
// cost of a few nanoseconds. A cryptographic hash would be several times
// slower for no benefit: the input is not adversarial.
func Score(node string, key netip.Addr) uint64 {
	return scoreFrom(namePrefix(node), key)
}

// namePrefix is the FNV-1a state after hashing node and the 0x00 separator:
// the part of Score that does not depend on the key.
func namePrefix(node string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(node); i++ {
		h ^= uint64(node[i])
		h *= fnvPrime64
	}
	h *= fnvPrime64 // the 0x00 separator (XOR with zero changes nothing)
	return h
}

// scoreFrom continues the FNV-1a state h with the key's bytes and applies
// the finalizer.
func scoreFrom(h uint64, key netip.Addr) uint64 {
	key = key.Unmap()
	switch {
	case key.Is4():
		for _, c := range key.As4() {
			h ^= uint64(c)
			h *= fnvPrime64
		}
	case key.Is6():
		for _, c := range key.As16() {
			h ^= uint64(c)
			h *= fnvPrime64
		}
	}
	return fmix64(h)
}

// fmix64 is the 64-bit finalizer of MurmurHash3 (public domain, Austin
// Appleby): every input bit affects every output bit with probability ~½.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Owner returns the layer-2 owner of key: the candidate with the highest
// Score, a tie (astronomically unlikely, but possible) going to the name
// that sorts first. It returns "" when there are no candidates. The result
// does not depend on the order of candidates, which is not modified.
func Owner(candidates []string, key netip.Addr) string {
	var (
		best      string
		bestScore uint64
		found     bool
	)
	for _, c := range candidates {
		s := Score(c, key)
		if !found || s > bestScore || (s == bestScore && c < best) {
			best, bestScore, found = c, s, true
		}
	}
	return best
}

// Ranker answers Owner for many keys over one fixed candidate set. It hashes
// each candidate's name once, so a full recomputation (every address after a
// node joins or leaves) costs a fraction of calling Owner per address. Its
// answers are identical to Owner's.
type Ranker struct {
	names  []string
	prefix []uint64
}

// NewRanker prepares candidates for repeated Owner calls. candidates is
// copied, not retained or modified.
func NewRanker(candidates []string) *Ranker {
	r := &Ranker{names: slices.Clone(candidates), prefix: make([]uint64, len(candidates))}
	for i, c := range r.names {
		r.prefix[i] = namePrefix(c)
	}
	return r
}

// Owner is Owner(candidates, key) for the candidates given to NewRanker.
func (r *Ranker) Owner(key netip.Addr) string {
	var (
		best      string
		bestScore uint64
		found     bool
	)
	for i, c := range r.names {
		s := scoreFrom(r.prefix[i], key)
		if !found || s > bestScore || (s == bestScore && c < best) {
			best, bestScore, found = c, s, true
		}
	}
	return best
}
