package allocator

import (
	"net/netip"

	"github.com/google/btree"
)

// interval is an inclusive run of free addresses of one family.
type interval struct{ from, to netip.Addr }

// freeSet holds the free addresses of one pool and one family as disjoint,
// non-adjacent intervals ordered by start. A pool's allocated addresses are
// usually clustered at the bottom, so the tree stays small: 60 000
// sequential allocations from a /16 leave one interval.
type freeSet struct {
	t *btree.BTreeG[interval]
}

func newFreeSet() *freeSet {
	return &freeSet{t: btree.NewG(16, func(a, b interval) bool { return a.from.Less(b.from) })}
}

// add inserts a run known to be disjoint from and not adjacent to the set;
// used only while building.
func (s *freeSet) add(iv interval) { s.t.ReplaceOrInsert(iv) }

// containing returns the interval holding a.
func (s *freeSet) containing(a netip.Addr) (interval, bool) {
	var found interval
	ok := false
	s.t.DescendLessOrEqual(interval{from: a}, func(iv interval) bool {
		found, ok = iv, a.Compare(iv.to) <= 0
		return false
	})
	return found, ok
}

// lowest removes and returns the lowest free address for which usable is
// true, dropping unusable ones it passes over for good (they never return:
// callers only give back addresses they could have taken).
func (s *freeSet) lowest(usable func(netip.Addr) bool) (netip.Addr, bool) {
	for {
		iv, ok := s.t.DeleteMin()
		if !ok {
			return netip.Addr{}, false
		}
		a := iv.from
		if a != iv.to {
			s.t.ReplaceOrInsert(interval{from: a.Next(), to: iv.to})
		}
		if usable(a) {
			return a, true
		}
	}
}

// take removes a from the set; false if it was not free.
func (s *freeSet) take(a netip.Addr) bool {
	iv, ok := s.containing(a)
	if !ok {
		return false
	}
	s.t.Delete(iv)
	if iv.from != a {
		s.t.ReplaceOrInsert(interval{from: iv.from, to: a.Prev()})
	}
	if iv.to != a {
		s.t.ReplaceOrInsert(interval{from: a.Next(), to: iv.to})
	}
	return true
}

// give returns a to the set, merging with its neighbours; false if it was
// already free.
func (s *freeSet) give(a netip.Addr) bool {
	var prev, next interval
	hasPrev, hasNext := false, false
	s.t.DescendLessOrEqual(interval{from: a}, func(iv interval) bool {
		prev, hasPrev = iv, true
		return false
	})
	if hasPrev && a.Compare(prev.to) <= 0 {
		return false
	}
	if n := a.Next(); n.IsValid() && n.Is4() == a.Is4() {
		s.t.AscendGreaterOrEqual(interval{from: n}, func(iv interval) bool {
			next, hasNext = iv, iv.from == n
			return false
		})
	}
	joinPrev := hasPrev && prev.to.Next() == a
	merged := interval{from: a, to: a}
	if joinPrev {
		s.t.Delete(prev)
		merged.from = prev.from
	}
	if hasNext {
		s.t.Delete(next)
		merged.to = next.to
	}
	s.t.ReplaceOrInsert(merged)
	return true
}

// intervals is the number of runs, for tests and benchmarks.
func (s *freeSet) intervals() int { return s.t.Len() }
