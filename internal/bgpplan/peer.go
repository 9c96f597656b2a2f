package bgpplan

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Defaults of a BGPPeer's optional fields.
const (
	// DefaultPort is BGP's port.
	DefaultPort = 179
	// DefaultHoldTime is RFC 4271's suggested hold time; the keepalive is a
	// third of it unless set.
	DefaultHoldTime = 90 * time.Second
	// DefaultConnectTime replaces GoBGP's connect retry (120–240 s after
	// the first attempt), so a router that comes back is dialled within
	// seconds.
	DefaultConnectTime = 5 * time.Second
)

// DynamicASN is the kind of router a Peer without PeerASN accepts.
type DynamicASN string

const (
	// DynamicInternal accepts a router whose AS is MyASN (iBGP).
	DynamicInternal DynamicASN = "internal"
	// DynamicExternal accepts a router in any other AS (eBGP).
	DynamicExternal DynamicASN = "external"
)

// Accepts reports whether a router in AS peerASN is of kind d for a
// speaker in myASN.
func (d DynamicASN) Accepts(myASN, peerASN uint32) bool {
	return (d == DynamicInternal) == (peerASN == myASN)
}

// Peer is one BGP neighbour (a BGPPeer object as it applies to this node).
type Peer struct {
	Name           string // BGPPeer object name (unique key)
	MyASN, PeerASN uint32 // PeerASN 0 with DynamicASN set
	// DynamicASN, when set instead of PeerASN, takes the router's AS from
	// its OPEN message and accepts only a router of this kind.
	DynamicASN DynamicASN
	// Address is the router's address; for a peer with an Interface it
	// is zero in the configuration and, inside the announcer, the
	// link-local address found on the interface (zoned).
	Address netip.Addr
	// Interface makes the session unnumbered: the router is the one IPv6
	// link-local neighbour on this interface. Exclusive with Address.
	Interface       string
	Port            uint16     // 0 = DefaultPort
	SourceAddress   netip.Addr // optional (zero = kernel chooses)
	HoldTime        time.Duration
	KeepaliveTime   time.Duration // zero = HoldTime/3
	ConnectTime     time.Duration // zero = GoBGP's own: first dial after 1-2 s, then every 120-240 s
	EBGPMultiHop    bool
	Password        string // TCP-MD5; "" = none
	GracefulRestart bool
	// VRF is the Linux VRF device the session is opened from; "" is the
	// default VRF.
	VRF string
	// BFD is the session's BFD profile; BFD.Enabled false: none.
	BFD BFD
}

// BFD is a peer's BFD profile (zero durations and numbers: the BFD
// engine's defaults). It is a plain value so that Peer stays comparable.
type BFD struct {
	Enabled                           bool
	ReceiveInterval, TransmitInterval time.Duration
	DetectMultiplier                  uint8
	Passive                           bool
	MinimumTTL                        uint8
}

// ValidatePeers returns the valid peers by name, with the port defaulted
// and addresses unmapped. A peer whose address (or interface) an earlier
// peer (by name) already uses is refused: GoBGP keys neighbours by
// address, and one interface has one unnumbered router.
func ValidatePeers(peers []Peer) (map[string]Peer, []error) {
	var errs []error
	want := make(map[string]Peer, len(peers))
	sorted := slices.Clone(peers)
	slices.SortStableFunc(sorted, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	byAddr := map[netip.Addr]string{}
	byIface := map[string]string{}
	for _, p := range sorted {
		p.Address = p.Address.Unmap()
		p.SourceAddress = p.SourceAddress.Unmap()
		if p.Port == 0 {
			p.Port = DefaultPort
		}
		var err error
		switch {
		case p.Name == "":
			err = errors.New("BGP peer without a name")
		case want[p.Name] != (Peer{}):
			err = fmt.Errorf("BGP peer %s: listed twice", p.Name)
		case p.Interface != "" && p.Address.IsValid():
			err = fmt.Errorf("BGP peer %s: both an address (%v) and an interface (%s)", p.Name, p.Address, p.Interface)
		case p.Interface != "" && !ValidInterfaceName(p.Interface):
			err = fmt.Errorf("BGP peer %s: invalid interface name %q", p.Name, p.Interface)
		case p.Interface != "" && p.SourceAddress.IsValid():
			err = fmt.Errorf("BGP peer %s: a source address with an interface: the session runs from the interface's link-local address", p.Name)
		case p.Interface != "" && p.VRF != "":
			err = fmt.Errorf("BGP peer %s: a VRF with an interface is not supported", p.Name)
		case p.Interface != "" && byIface[p.Interface] != "":
			err = fmt.Errorf("BGP peer %s: interface %s already used by peer %s", p.Name, p.Interface, byIface[p.Interface])
		case p.Interface == "" && (!p.Address.IsValid() || p.Address.Zone() != ""):
			err = fmt.Errorf("BGP peer %s: invalid address %v", p.Name, p.Address)
		case p.MyASN == 0 || p.PeerASN == 0 && p.DynamicASN == "":
			err = fmt.Errorf("BGP peer %s: ASNs must not be 0", p.Name)
		case p.PeerASN != 0 && p.DynamicASN != "":
			err = fmt.Errorf("BGP peer %s: both a peer ASN and dynamic ASN %q", p.Name, p.DynamicASN)
		case p.DynamicASN != "" && p.DynamicASN != DynamicInternal && p.DynamicASN != DynamicExternal:
			err = fmt.Errorf("BGP peer %s: dynamic ASN %q is neither %q nor %q", p.Name, p.DynamicASN, DynamicInternal, DynamicExternal)
		case p.SourceAddress.IsValid() && p.SourceAddress.Is4() != p.Address.Is4():
			err = fmt.Errorf("BGP peer %s: source address %v and peer address %v are of different families", p.Name, p.SourceAddress, p.Address)
		case p.Interface == "" && byAddr[p.Address] != "":
			err = fmt.Errorf("BGP peer %s: address %v already used by peer %s", p.Name, p.Address, byAddr[p.Address])
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p.Interface != "" {
			byIface[p.Interface] = p.Name
		} else {
			byAddr[p.Address] = p.Name
		}
		want[p.Name] = p
	}
	return want, errs
}

// ValidInterfaceName reports whether name can be a Linux interface name
// (IFNAMSIZ less the terminating NUL; dev_valid_name in the kernel).
func ValidInterfaceName(name string) bool {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return false
	}
	return !strings.ContainsFunc(name, func(r rune) bool { return r == '/' || r == ':' || unicode.IsSpace(r) })
}

// RouterID is herald's policy for the BGP identifier of a node whose peers
// may each ask for one: one BGP server has one identifier, so the one
// every asking peer agrees on wins; when they disagree none does (the
// zero Addr: the node's own default) and the error names every side.
// asked maps peer names to the identifier each asks for.
func RouterID(asked map[string]netip.Addr) (netip.Addr, error) {
	byID := map[netip.Addr][]string{}
	for name, id := range asked {
		if id.IsValid() {
			byID[id] = append(byID[id], name)
		}
	}
	switch len(byID) {
	case 0:
		return netip.Addr{}, nil
	case 1:
		for id := range byID {
			return id, nil
		}
	}
	var parts []string
	for _, id := range slices.SortedFunc(func(yield func(netip.Addr) bool) {
		for id := range byID {
			if !yield(id) {
				return
			}
		}
	}, netip.Addr.Compare) {
		slices.Sort(byID[id])
		parts = append(parts, fmt.Sprintf("%s (%s)", id, strings.Join(byID[id], ", ")))
	}
	return netip.Addr{}, fmt.Errorf("peers ask for different router IDs, %s", strings.Join(parts, " vs "))
}
