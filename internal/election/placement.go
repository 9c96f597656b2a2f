package election

import (
	"math"
	"net/netip"
	"slices"
)

// Active-active layer 2: a Service with several addresses per family has
// them announced from different nodes.
//
// The addresses are grouped in slots (Slots): the i-th address of each
// family form slot i, announced from one node, and keyed like a whole
// Service used to be (its IPv4 address, else its IPv6 one). A Placer maps
// each slot to a node in two steps:
//
//  1. Homes. The slots get distinct homes among the eligible nodes: those
//     that would be candidates if every node were alive and healthy (the
//     pool's nodeSelector, not excluded and, for externalTrafficPolicy
//     Local, holding an endpoint). Each home is the slot's node with the
//     highest Score, pairs taken best first, one slot per node while any
//     node holds none (fill).
//  2. Owners. A slot whose home is a candidate is announced there. The
//     others (orphans) are spread the same way over the candidates, first
//     over those that hold none of the Service's slots.
//
// Why homes are chosen among eligible nodes rather than among the live
// candidates: liveness is what changes during a failure, and a placement
// computed from the live set alone cannot keep every address still while
// also keeping them apart (two failures in either order reach the same live
// set from different placements, so one order must move an address whose
// node did not fail). Computing homes from the slower-changing eligible set
// gives the guarantees below; the price is that a change to the eligible
// set itself (a Node deleted or relabelled, an endpoint of a Local Service
// moved) recomputes the homes and may move more than one address.
//
// Guarantees, each checked by the property tests in placement_test.go:
//   - One slot: the owner is exactly Owner(candidates, key). A Service with
//     one address per family is placed as it always was.
//   - The slots of a Service are on distinct candidates whenever there are
//     at least as many candidates as slots; otherwise no candidate holds
//     more than ⌈slots / candidates⌉ of them.
//   - A slot on its home never moves while the home is a candidate: losing
//     or regaining a node moves only the slots on it and orphans. With
//     every eligible node a candidate, losing one moves exactly its slots,
//     each to a node holding none of the Service's slots if there is one,
//     and its return moves exactly those back.
//   - The result depends on the inputs, not on their order.
//
// No global load bound is kept across Services: each Service is placed on
// its own, so creating or deleting one never moves another's address, and
// the load spreads as evenly as Score's hashing does (an even share ±15% on
// 10 000 slots over 10 nodes, like single addresses).

// Slot is one address of a Service with its twin of the other family, if
// any: both are announced from one node.
type Slot struct {
	// Addrs are the slot's addresses, IPv4 first.
	Addrs []netip.Addr
	// Key is the slot's election key: its IPv4 address, else its IPv6 one.
	Key netip.Addr
}

// Slots pairs a Service's addresses into slots: the i-th IPv4 and the i-th
// IPv6 address of addrs, in the order given, form slot i. A Service with one
// address per family has one slot, keyed by its IPv4 address if it has one,
// the key its owner has always been chosen by. Invalid addresses are
// skipped.
func Slots(addrs []netip.Addr) []Slot {
	var v4, v6 []netip.Addr
	for _, a := range addrs {
		switch {
		case a.Is4():
			v4 = append(v4, a)
		case a.Is6():
			v6 = append(v6, a)
		}
	}
	out := make([]Slot, max(len(v4), len(v6)))
	for i := range out {
		if i < len(v4) {
			out[i].Addrs = append(out[i].Addrs, v4[i])
		}
		if i < len(v6) {
			out[i].Addrs = append(out[i].Addrs, v6[i])
		}
		out[i].Key = out[i].Addrs[0]
	}
	return out
}

// Placer places the slots of Services over one pair of node sets. It
// hashes every node name once, so placing many Services that share the
// sets costs little more than their scores. It keeps scratch space between
// calls, so one Placer serves one goroutine at a time.
type Placer struct {
	// names are eligible ∪ candidates, sorted: an index orders nodes by
	// name, the tie-break Owner uses.
	names  []string
	prefix []uint64
	home   []bool // eligible: may be a home
	live   []bool // a candidate: may announce now
	// scratch, sized per call
	scores  []uint64
	load    []int
	inRound []bool
	best    []int
	at      []int
	todo    []int
}

// NewPlacer prepares placement over eligible nodes (the candidates every
// node would be if all were alive and healthy) and candidates (the nodes
// that may announce now, as Candidates returns them). Neither slice is
// retained or modified; their order does not matter. A candidate that is
// not eligible may announce orphans but is never a home.
func NewPlacer(eligible, candidates []string) *Placer {
	names := slices.Concat(eligible, candidates)
	slices.Sort(names)
	names = slices.Compact(names)
	p := &Placer{
		names:  names,
		prefix: make([]uint64, len(names)),
		home:   make([]bool, len(names)),
		live:   make([]bool, len(names)),
	}
	for i, n := range names {
		p.prefix[i] = namePrefix(n)
	}
	for _, n := range eligible {
		i, _ := slices.BinarySearch(names, n)
		p.home[i] = true
	}
	for _, n := range candidates {
		i, _ := slices.BinarySearch(names, n)
		p.live[i] = true
	}
	return p
}

// Place returns the owner of each slot of one Service, given the slots'
// keys in slot order: "" for every slot when there is no candidate. keys is
// not modified.
func (p *Placer) Place(keys []netip.Addr) []string {
	n, k := len(p.names), len(keys)
	owners := make([]string, k)
	if k == 0 || !slices.Contains(p.live, true) {
		return owners
	}
	p.scores = grow(p.scores, k*n)
	for s, key := range keys {
		row := p.scores[s*n : (s+1)*n]
		for j := range row {
			row[j] = scoreFrom(p.prefix[j], key)
		}
	}
	p.load = grow(p.load, n)
	p.at = grow(p.at, k)
	clear(p.load)
	p.todo = p.todo[:0]
	for s := range k {
		p.at[s] = -1
		p.todo = append(p.todo, s)
	}
	p.fill(keys, p.home)

	// Slots at a live home stay; the rest are orphans, placed over the
	// candidates around them.
	clear(p.load)
	p.todo = p.todo[:0]
	for s, j := range p.at[:k] {
		if j >= 0 && p.live[j] {
			p.load[j]++
		} else {
			p.at[s] = -1
			p.todo = append(p.todo, s)
		}
	}
	p.fill(keys, p.live)
	for s, j := range p.at[:k] {
		owners[s] = p.names[j]
	}
	return owners
}

// fill assigns every slot in p.todo to a node of mask (p.at), in rounds:
// a round offers the nodes of mask that hold the fewest slots (p.load), one
// slot each, and within it the slot-node pair with the highest score is
// taken first. Taking pairs best first rather than slot by slot makes the
// result independent of the slots' order; offering the least loaded nodes
// first keeps the slots apart. With no node in mask nothing is placed.
func (p *Placer) fill(keys []netip.Addr, mask []bool) {
	n := len(p.names)
	p.inRound = grow(p.inRound, n)
	p.best = grow(p.best, len(keys))
	todo := p.todo
	for len(todo) > 0 {
		level := math.MaxInt
		for j := range n {
			if mask[j] && p.load[j] < level {
				level = p.load[j]
			}
		}
		if level == math.MaxInt {
			return // no node in mask: the slots stay unplaced
		}
		for j := range n {
			p.inRound[j] = mask[j] && p.load[j] == level
		}
		for _, s := range todo {
			p.best[s] = p.bestNode(s)
		}
		for len(todo) > 0 {
			bi := -1
			for i, s := range todo {
				if p.best[s] >= 0 && (bi < 0 || p.before(keys, s, todo[bi])) {
					bi = i
				}
			}
			if bi < 0 {
				break // every node of this round took a slot
			}
			s := todo[bi]
			j := p.best[s]
			p.at[s] = j
			p.load[j]++
			p.inRound[j] = false
			todo = slices.Delete(todo, bi, bi+1)
			for _, t := range todo {
				if p.best[t] == j {
					p.best[t] = p.bestNode(t)
				}
			}
		}
	}
}

// bestNode is the node of the current round with the highest score for
// slot s, the first name on a tie, as in Owner; -1 if the round is empty.
func (p *Placer) bestNode(s int) int {
	n := len(p.names)
	row := p.scores[s*n : (s+1)*n]
	best := -1
	for j, in := range p.inRound[:n] {
		if in && (best < 0 || row[j] > row[best]) {
			best = j
		}
	}
	return best
}

// before reports whether slot s's best pair goes before slot t's: the
// higher score, then the node whose name sorts first, then the lower key,
// then the earlier slot (only equal keys get that far).
func (p *Placer) before(keys []netip.Addr, s, t int) bool {
	n := len(p.names)
	js, jt := p.best[s], p.best[t]
	if a, b := p.scores[s*n+js], p.scores[t*n+jt]; a != b {
		return a > b
	}
	if js != jt {
		return js < jt
	}
	if c := keys[s].Compare(keys[t]); c != 0 {
		return c < 0
	}
	return s < t
}

// grow returns s with length n, reusing its array when it is big enough.
func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// Place is NewPlacer(eligible, candidates).Place(keys), for one Service.
func Place(eligible, candidates []string, keys []netip.Addr) []string {
	return NewPlacer(eligible, candidates).Place(keys)
}
