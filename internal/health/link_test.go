//go:build privileged

package health

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestLinkUpFor follows the node address across links and link states, in a
// network namespace of its own (root only: build tag privileged).
func TestLinkUpFor(t *testing.T) {
	inOwnNetns(t)

	addr := netip.MustParseAddr("203.0.113.77")
	nlAddr := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	a, b := vethPair(t, "hl-a"), vethPair(t, "hl-b")
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

// TestLinkStates judges interfaces by name (absent, admin down, no
// carrier) and reports link changes as they happen, in a network namespace
// of its own.
func TestLinkStates(t *testing.T) {
	inOwnNetns(t)
	vethPair(t, "lan2")
	ls := NewLinkStates()
	kicked := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := ls.Subscribe(ctx, func(name string) {
		if name == "lan2" {
			kicked <- struct{}{}
		}
	}, func(err error) { t.Errorf("subscription failed: %v", err) }); err != nil {
		t.Fatal(err)
	}
	check := func(what string, want ...string) {
		t.Helper()
		got, err := ls.Down([]string{"lan2", "lan2-p", "absent0"})
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: down %v, err %v; want %v", what, got, err, want)
		}
	}
	check("both ends up", "absent0")
	drain := func(what string) {
		t.Helper()
		select {
		case <-kicked:
		case <-time.After(5 * time.Second):
			t.Errorf("%s: no link change reported", what)
		}
		for len(kicked) > 0 {
			<-kicked
		}
	}
	for len(kicked) > 0 {
		<-kicked
	}
	// The peer down takes the carrier away from lan2, which stays
	// administratively up.
	if err := netlink.LinkSetDown(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan2-p"}}); err != nil {
		t.Fatal(err)
	}
	drain("lan2-p set down")
	check("lan2-p down", "lan2", "lan2-p", "absent0")
	if err := netlink.LinkSetUp(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan2-p"}}); err != nil {
		t.Fatal(err)
	}
	drain("lan2-p set up")
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		got, err := ls.Down([]string{"lan2"})
		return err == nil && len(got) == 0, nil
	}); err != nil {
		t.Error("lan2 never came back up with its peer")
	}
	cancel()
}

// inOwnNetns moves the test's thread into a new network namespace until
// the test ends (root only: build tag privileged).
func inOwnNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("privileged tests built in but not running as root: a network namespace with veth links needs root")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.New() // switches this thread into it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = netns.Set(orig)
		_ = orig.Close()
		_ = ns.Close()
		runtime.UnlockOSThread()
	})
}

// vethPair adds name and name-p, both up (this kernel may lack the dummy
// driver); a veth is operationally up only with its peer up too.
func vethPair(t *testing.T, name string) netlink.Link {
	t.Helper()
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
