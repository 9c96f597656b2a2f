//go:build privileged

package localaddr

import (
	"net/netip"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAddRemove adds and removes an IPv4 and an IPv6 VIP on the loopback
// interface of a network namespace of its own (the goroutine's thread
// moves into it and is thrown away afterwards).
func TestAddRemove(t *testing.T) {
	vips := []netip.Addr{netip.MustParseAddr("198.51.100.100"), netip.MustParseAddr("2001:db8:100::100")}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine, so no other
		// goroutine runs in the new namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- nil
		check(t, Addrs{Addrs: vips}, vips)
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("unshare: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func check(t *testing.T, a Addrs, vips []netip.Addr) {
	has := func(want bool) {
		for _, ip := range vips {
			got, err := a.Has(ip)
			if err != nil {
				t.Errorf("Has(%s): %v", ip, err)
			}
			if got != want {
				t.Errorf("Has(%s) = %t, want %t", ip, got, want)
			}
		}
	}
	// Removing what is not there is not an error (clearing a crashed run).
	if err := a.Remove(); err != nil {
		t.Errorf("Remove before Add: %v", err)
	}
	has(false)
	for range 2 { // idempotent
		if err := a.Add(); err != nil {
			t.Errorf("Add: %v", err)
		}
	}
	has(true)
	if err := a.Remove(); err != nil {
		t.Errorf("Remove: %v", err)
	}
	has(false)
}
