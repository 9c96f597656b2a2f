package cpvip

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Defaults of the control-plane mode: a memberlist cluster and a metrics
// port of its own (beside the Service speaker's 7946 and 7473), and the CA
// where kubeadm writes it.
const (
	DefaultPort        = 7948
	DefaultMetricsPort = 7475
	KubeadmCAFile      = "/etc/kubernetes/pki/ca.crt"
)

// ParseVIPs reads the VIP list: one IPv4 and/or one IPv6 unicast address,
// comma-separated.
func ParseVIPs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	var v4, v6 bool
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("VIP %q is not an IP address", f)
		}
		a = a.Unmap()
		if !a.IsGlobalUnicast() {
			return nil, fmt.Errorf("VIP %s is not a unicast address a client can reach", a)
		}
		if (a.Is4() && v4) || (a.Is6() && v6) {
			return nil, fmt.Errorf("VIP %s: at most one IPv4 and one IPv6 VIP", a)
		}
		v4, v6 = v4 || a.Is4(), v6 || a.Is6()
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("no VIP given")
	}
	// IPv4 first, whatever the order given: the first VIP is the
	// election's key, and every node must rank by the same one.
	slices.SortFunc(out, func(a, b netip.Addr) int { return cmp.Compare(a.BitLen(), b.BitLen()) })
	return out, nil
}

// ParsePeers reads the other control-plane nodes' memberlist addresses:
// ADDR or ADDR:PORT (IPv6 as [ADDR]:PORT), comma-separated; port is the
// default.
func ParsePeers(s string, port int) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if a, err := netip.ParseAddr(f); err == nil && a.Zone() == "" {
			out = append(out, netip.AddrPortFrom(a.Unmap(), uint16(port)))
			continue
		}
		host, p, err := net.SplitHostPort(f)
		if err != nil {
			return nil, fmt.Errorf("peer %q is neither ADDR nor ADDR:PORT", f)
		}
		a, aerr := netip.ParseAddr(host)
		n, perr := strconv.ParseUint(p, 10, 16)
		if aerr != nil || a.Zone() != "" || perr != nil || n == 0 {
			return nil, fmt.Errorf("peer %q is neither ADDR nor ADDR:PORT", f)
		}
		out = append(out, netip.AddrPortFrom(a.Unmap(), uint16(n)))
	}
	return out, nil
}

// CheckSettings refuses settings under which one node would announce the
// VIP and Service addresses through conflicting means: the Service
// speakers' memberlist port (a control-plane member would join the Service
// cluster, or the reverse), or the VIP being the node's own address.
func CheckSettings(vips []netip.Addr, bind netip.Addr, port, servicePort int) error {
	if port == servicePort {
		return fmt.Errorf("memberlist port %d is the Service speakers' (--memberlist-port of the DaemonSet): the control-plane VIP needs a cluster of its own", port)
	}
	for _, v := range vips {
		if v == bind {
			return fmt.Errorf("VIP %s is this node's own address", v)
		}
	}
	return nil
}

// CheckPeers refuses peers a member bound to bind cannot join: another
// IP family (memberlist binds one socket), or this node's own address with
// another port than the one it listens on.
func CheckPeers(peers []netip.AddrPort, bind netip.Addr, port int) error {
	for _, p := range peers {
		switch {
		case p.Addr().Is4() != bind.Is4():
			return fmt.Errorf("peer %s is not of the family of this node's address %s", p, bind)
		case p.Addr() == bind && int(p.Port()) != port:
			return fmt.Errorf("this node's own entry %s names another port than --memberlist-port %d", p, port)
		}
	}
	return nil
}

// ChooseBind picks this node's address among the peers: the one peer
// address that is local, so that one manifest serves every control-plane
// node.
func ChooseBind(peers []netip.AddrPort, local []netip.Addr) (netip.Addr, error) {
	var found []netip.Addr
	for _, p := range peers {
		for _, l := range local {
			if p.Addr() == l.Unmap() && !slices.Contains(found, l.Unmap()) {
				found = append(found, l.Unmap())
			}
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return netip.Addr{}, errors.New("none of the peers' addresses is this node's: give --bind-addr, or list this node in --peers")
	}
	return netip.Addr{}, fmt.Errorf("several peers' addresses are this node's (%v): give --bind-addr", found)
}
