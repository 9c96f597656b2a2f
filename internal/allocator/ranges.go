package allocator

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Family is an IP address family. Its String form matches Kubernetes'
// v1.IPFamily values so callers can convert without a table.
type Family int

// The two families, in the order herald prefers them when a Service does not say.
const (
	IPv4 Family = iota
	IPv6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// FamilyOf reports the family of a valid address.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// Range is an inclusive span of addresses of one family.
type Range struct {
	From, To netip.Addr
}

// ParseRange parses one IPPool address entry: a CIDR with no host bits set
// ("198.51.100.240/28") or a range of one family ("198.51.100.10-198.51.100.20").
// It is stricter than the CRD schema can be: it also orders IPv6 range ends.
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Range{}, fmt.Errorf("empty address entry")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, fmt.Errorf("%q is not a valid CIDR", s)
		}
		if err := checkAddr(s, p.Addr()); err != nil {
			return Range{}, err
		}
		if p.Masked() != p {
			return Range{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
		}
		return Range{From: p.Addr(), To: lastAddr(p)}, nil
	}
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return Range{}, fmt.Errorf("%q is neither a CIDR nor a range a-b", s)
	}
	a, errA := netip.ParseAddr(strings.TrimSpace(from))
	b, errB := netip.ParseAddr(strings.TrimSpace(to))
	if errA != nil || errB != nil {
		return Range{}, fmt.Errorf("%q is not a range of two IP addresses", s)
	}
	if err := checkAddr(s, a); err != nil {
		return Range{}, err
	}
	if err := checkAddr(s, b); err != nil {
		return Range{}, err
	}
	if a.Is4() != b.Is4() {
		return Range{}, fmt.Errorf("%q mixes IPv4 and IPv6", s)
	}
	if b.Less(a) {
		return Range{}, fmt.Errorf("%q starts after it ends", s)
	}
	return Range{From: a, To: b}, nil
}

// checkAddr refuses address forms that would silently mean something else:
// zones are link-local scoping and IPv4-mapped IPv6 would be a second
// spelling of an IPv4 address that overlap checks could miss.
func checkAddr(entry string, a netip.Addr) error {
	if a.Zone() != "" {
		return fmt.Errorf("%q: addresses with a zone are not allowed", entry)
	}
	if a.Is4In6() {
		return fmt.Errorf("%q: use the IPv4 form %s, not an IPv4-mapped IPv6 address", entry, a.Unmap())
	}
	return nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		b[i/8] |= 1 << (7 - uint(i%8))
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// Compact turns sorted addresses into the fewest ranges that hold exactly
// them.
func Compact(addrs []netip.Addr) []Range {
	var out []Range
	for _, a := range addrs {
		if n := len(out); n > 0 && out[n-1].To.Next() == a {
			out[n-1].To = a
			continue
		}
		out = append(out, Range{From: a, To: a})
	}
	return out
}

// String renders the range as a CIDR when it is exactly one, else as a-b.
func (r Range) String() string {
	if p, ok := r.prefix(); ok {
		return p.String()
	}
	return r.From.String() + "-" + r.To.String()
}

func (r Range) prefix() (netip.Prefix, bool) {
	for bits := 0; bits <= r.From.BitLen(); bits++ {
		p := netip.PrefixFrom(r.From, bits)
		if p.Masked() == p && lastAddr(p) == r.To {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// Family of the range.
func (r Range) Family() Family { return FamilyOf(r.From) }

// Contains reports whether a lies in the range.
func (r Range) Contains(a netip.Addr) bool {
	return a.Is4() == r.From.Is4() && r.From.Compare(a) <= 0 && a.Compare(r.To) <= 0
}

// Overlaps reports whether two ranges share an address.
func (r Range) Overlaps(o Range) bool {
	return r.From.Is4() == o.From.Is4() && r.From.Compare(o.To) <= 0 && o.From.Compare(r.To) <= 0
}

// Size is the number of addresses in the range; big because an IPv6 /64 holds 2^64.
func (r Range) Size() *big.Int {
	n := new(big.Int).Sub(addrInt(r.To), addrInt(r.From))
	return n.Add(n, big.NewInt(1))
}

func addrInt(a netip.Addr) *big.Int {
	b := a.As16()
	return new(big.Int).SetBytes(b[:])
}

// buggyCount is how many IPv4 addresses in r end in .0 or .255, the ones
// avoidBuggyIPs skips because some old clients and routers treat them as
// network or broadcast addresses regardless of the real prefix length.
func (r Range) buggyCount() int64 {
	if !r.From.Is4() {
		return 0
	}
	from, to := int64(addr4(r.From)), int64(addr4(r.To))
	count := func(rem int64) int64 { return upTo(to, rem) - upTo(from-1, rem) }
	return count(0) + count(255)
}

// upTo counts the x in [0, n] with x%256 == rem.
func upTo(n, rem int64) int64 {
	if n < rem {
		return 0
	}
	return (n-rem)/256 + 1
}

func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func isBuggy(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	last := a.As4()[3]
	return last == 0 || last == 255
}

// ParseAddressList parses the herald.dev/ips annotation: comma-separated
// addresses, at most perFamily of each family (the Service's address
// count) and none twice.
func ParseAddressList(s string, perFamily int) ([]netip.Addr, error) {
	var out []netip.Addr
	var seen [2]int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is not an IP address", ErrInvalidRequest, f)
		}
		if err := checkAddr(f, a); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
		}
		if slices.Contains(out, a) {
			return nil, fmt.Errorf("%w: %s appears twice in %q", ErrInvalidRequest, a, s)
		}
		fam := FamilyOf(a)
		if seen[fam]++; seen[fam] > max(perFamily, 1) {
			if perFamily <= 1 {
				return nil, fmt.Errorf("%w: more than one %s address in %q", ErrInvalidRequest, fam, s)
			}
			return nil, fmt.Errorf("%w: more than %d %s addresses in %q, the number the Service asks for", ErrInvalidRequest, perFamily, fam, s)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no address in %q", ErrInvalidRequest, s)
	}
	return out, nil
}

// ParseCount parses the herald.dev/address-count annotation: a whole
// number of addresses per family, from 1 to MaxCount.
func ParseCount(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > MaxCount {
		return 0, fmt.Errorf("%w: %q is not a whole number from 1 to %d", ErrInvalidRequest, s, MaxCount)
	}
	return n, nil
}
