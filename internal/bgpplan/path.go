package bgpplan

import (
	"cmp"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Path is one prefix to announce.
type Path struct {
	Prefix           netip.Prefix // /32, /128, or an aggregate
	Communities      []string     // "N:N" or well-known names (see ParseCommunity)
	LargeCommunities []string     // "N:N:N"
	LocalPref        *uint32      // sent to iBGP peers only
	Peers            []string     // advertise only to these peer names; empty = all peers
}

// Well-known communities (RFC 1997, RFC 3765, RFC 7999), by the names the
// IPPool API accepts.
var wellKnownCommunities = map[string]uint32{
	"no-export":           0xFFFFFF01,
	"no-advertise":        0xFFFFFF02,
	"no-export-subconfed": 0xFFFFFF03,
	"no-peer":             0xFFFFFF04,
	"blackhole":           0xFFFF029A,
}

// ParseCommunity parses a standard community: "N:N" (two 16-bit numbers) or
// one of the well-known names no-export, no-advertise, no-export-subconfed,
// no-peer and blackhole.
func ParseCommunity(s string) (uint32, error) {
	if v, ok := wellKnownCommunities[strings.ToLower(s)]; ok {
		return v, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("community %q: want N:N or a well-known name", s)
	}
	h, err := strconv.ParseUint(hi, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("community %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("community %q: %w", s, err)
	}
	return uint32(h)<<16 | uint32(l), nil
}

// LargeCommunity is an RFC 8092 large community.
type LargeCommunity struct{ Global, Local1, Local2 uint32 }

// ParseLargeCommunity parses "N:N:N" (three 32-bit numbers).
func ParseLargeCommunity(s string) (LargeCommunity, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return LargeCommunity{}, fmt.Errorf("large community %q: want N:N:N", s)
	}
	var v [3]uint32
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return LargeCommunity{}, fmt.Errorf("large community %q: %w", s, err)
		}
		v[i] = uint32(n)
	}
	return LargeCommunity{v[0], v[1], v[2]}, nil
}

func compareLarge(a, b LargeCommunity) int {
	return cmp.Or(cmp.Compare(a.Global, b.Global), cmp.Compare(a.Local1, b.Local1), cmp.Compare(a.Local2, b.Local2))
}
