package layer2

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/ndp"
)

func ns(target netip.Addr, sll []byte) *ndp.NeighborSolicitation {
	m := &ndp.NeighborSolicitation{TargetAddress: target}
	if sll != nil {
		m.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: sll}}
	}
	return m
}

func na(target netip.Addr, tll []byte, solicited bool) *ndp.NeighborAdvertisement {
	return &ndp.NeighborAdvertisement{
		Solicited: solicited, Override: true, TargetAddress: target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: tll}},
	}
}

func TestNDPAnswersOnlyOwnedAddresses(t *testing.T) {
	e := newTestEnv()
	r, c := e.ndp(t)
	r.setAddrs(addrs(vip6))

	tests := []struct {
		name string
		msg  ndp.Message
		src  netip.Addr
		want []ndpWrite
	}{
		{
			name: "solicitation for owned address",
			msg:  ns(vip6, clientMAC), src: clientIP6.WithZone("eth0"),
			want: []ndpWrite{{na(vip6, ourMAC, true), clientIP6.WithZone("eth0")}},
		},
		{
			name: "duplicate address detection for owned address",
			msg:  ns(vip6, nil), src: netip.IPv6Unspecified(),
			want: []ndpWrite{{na(vip6, ourMAC, false), allNodes}},
		},
		{name: "solicitation for another address", msg: ns(vip6b, clientMAC), src: clientIP6},
		{name: "our own kernel asking", msg: ns(vip6, ourMAC), src: clientIP6},
		{name: "advertisement is not a question", msg: na(vip6, clientMAC, true), src: clientIP6},
		{name: "router solicitation", msg: &ndp.RouterSolicitation{}, src: clientIP6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(c.written())
			r.handle(tt.msg, tt.src)
			if diff := cmp.Diff(tt.want, c.written()[before:], cmpAddr, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("written (-want +got):\n%s", diff)
			}
		})
	}
	if got := counter(t, e.m.requests, "eth0", "ipv6"); got != 2 {
		t.Errorf("requests metric = %v, want 2", got)
	}
	if got := counter(t, e.m.replies, "eth0", "ipv6"); got != 2 {
		t.Errorf("replies metric = %v, want 2", got)
	}
}

func TestNDPUnsolicitedSchedule(t *testing.T) {
	e := newTestEnv()
	e.count = 2
	r, c := e.ndp(t)
	r.setAddrs(addrs(vip6))
	want := []ndpWrite{{&ndp.NeighborAdvertisement{
		Override: true, TargetAddress: vip6,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ourMAC}},
	}, allNodes}}
	if diff := cmp.Diff(want, c.written(), cmpAddr); diff != "" {
		t.Fatalf("immediately after setAddrs (-want +got):\n%s", diff)
	}
	e.step(t, 1, e.interval)
	eventually(t, "second NA", func() bool { return len(c.written()) == 2 })
	e.clk.Step(10 * e.interval)
	e.settle(t, r.ownerSet)
	if got := len(c.written()); got != 2 {
		t.Errorf("%d NAs, want GratuitousCount=2", got)
	}
	if got := counter(t, e.m.gratuitous, "eth0", "ipv6"); got != 2 {
		t.Errorf("gratuitous metric = %v, want 2", got)
	}
}

func TestNDPSolicitedNodeGroups(t *testing.T) {
	e := newTestEnv()
	e.count = 1
	r, c := e.ndp(t)
	// vip6 and this address share the low 24 bits: one group for both.
	twin := netip.MustParseAddr("2001:db8:200::200")
	g, _ := ndp.SolicitedNodeMulticast(vip6)
	gb, _ := ndp.SolicitedNodeMulticast(vip6b)

	r.setAddrs(addrs(vip6, twin, vip6b))
	if diff := cmp.Diff(map[netip.Addr]bool{g: true, gb: true}, c.joined(), cmpAddr); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	r.setAddrs(addrs(twin))
	if diff := cmp.Diff(map[netip.Addr]bool{g: true}, c.joined(), cmpAddr); diff != "" {
		t.Errorf("groups after removing vip6, vip6b (-want +got):\n%s", diff)
	}
	r.setAddrs(nil)
	if got := c.joined(); len(got) != 0 {
		t.Errorf("groups still joined: %v", got)
	}
	before := len(c.written())
	r.handle(ns(vip6, clientMAC), clientIP6)
	if got := len(c.written()); got != before {
		t.Error("answered for a removed address")
	}
}

func TestNDPConflict(t *testing.T) {
	e := newTestEnv()
	e.count = 1
	r, c := e.ndp(t)
	r.setAddrs(addrs(vip6))
	r.handle(na(vip6, otherMAC, false), clientIP6) // within grace
	e.clk.Step(e.grace)
	r.handle(na(vip6, ourMAC, false), clientIP6)    // our own
	r.handle(na(vip6b, otherMAC, false), clientIP6) // not ours
	e.settle(t, r.ownerSet)
	if e.clk.HasWaiters() {
		t.Fatal("conflict started by an ignorable advertisement")
	}
	r.handle(na(vip6, otherMAC, false), clientIP6)
	e.step(t, 1, e.grace)
	eventually(t, "conflict report", func() bool { return len(e.conflicts.get()) == 1 })
	if diff := cmp.Diff([]string{"2001:db8:100::200 eth0 " + otherMAC.String()}, e.conflicts.get()); diff != "" {
		t.Errorf("OnConflict (-want +got):\n%s", diff)
	}
	// Served through the conn too.
	c.in <- ndpWrite{na(vip6, otherMAC, false), clientIP6}
	eventually(t, "conflict metric", func() bool { return counter(t, e.m.conflicts, "eth0", "ipv6") == 2 })
}
