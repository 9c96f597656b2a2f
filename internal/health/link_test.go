//go:build privileged

package health

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestLinkUpFor follows the node address across links and link states, in a
// network namespace of its own (root only: build tag privileged).
func TestLinkUpFor(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("privileged tests built in but not running as root: a network namespace with veth links needs root")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = netns.Set(orig); _ = orig.Close() }()
	ns, err := netns.New() // switches this thread into it
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ns.Close() }()

	addr := netip.MustParseAddr("203.0.113.77")
	nlAddr := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	// veth pairs (this kernel may lack the dummy driver); a veth is
	// operationally up only with its peer up too.
	pair := func(name string) netlink.Link {
		l := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "-p"}
		if err := netlink.LinkAdd(l); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{name, name + "-p"} {
			if err := netlink.LinkSetUp(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: n}}); err != nil {
				t.Fatal(err)
			}
		}
		return l
	}
	a, b := pair("hl-a"), pair("hl-b")
	up := LinkUpFor(addr)
	check := func(what string, wantUp, wantErr bool) {
		t.Helper()
		got, err := up()
		if got != wantUp || (err != nil) != wantErr {
			t.Errorf("%s: up=%t err=%v; want up=%t, error %t", what, got, err, wantUp, wantErr)
		}
	}

	check("no link holds the address", false, true)
	if err := netlink.AddrAdd(a, nlAddr); err != nil {
		t.Fatal(err)
	}
	check("address on hl-a, up", true, false)
	if err := netlink.LinkSetDown(a); err != nil {
		t.Fatal(err)
	}
	check("hl-a down", false, false)
	// The address moves to an up link: the remembered link no longer
	// holds it, so the check finds the new one.
	if err := netlink.AddrDel(a, nlAddr); err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(b, nlAddr); err != nil {
		t.Fatal(err)
	}
	check("address moved to hl-b, up", true, false)
	if err := netlink.LinkDel(b); err != nil {
		t.Fatal(err)
	}
	check("hl-b deleted", false, true)
}
