package layer2

import (
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// FuzzARPHandle feeds arbitrary frames to the ARP responder: no input may
// make it panic, and it only ever answers for an owned address.
func FuzzARPHandle(f *testing.F) {
	f.Add(arpFrame(f, ethernet.Broadcast, arp.OperationRequest, clientMAC, clientIP4, zeroMAC, vip4))
	f.Add(arpFrame(f, otherMAC, arp.OperationRequest, clientMAC, clientIP4, otherMAC, vip4))
	f.Add(arpFrame(f, ethernet.Broadcast, arp.OperationReply, otherMAC, vip4, otherMAC, vip4))
	f.Add(arpFrame(f, ethernet.Broadcast, arp.OperationRequest, clientMAC, netip.IPv4Unspecified(), zeroMAC, vip4))
	vlan := ethernet.Frame{
		Destination: ethernet.Broadcast, Source: clientMAC, VLAN: &ethernet.VLAN{ID: 10},
		EtherType: ethernet.EtherTypeARP, Payload: arpFrame(f, ethernet.Broadcast, arp.OperationRequest, clientMAC, clientIP4, zeroMAC, vip4)[14:],
	}
	vb, _ := vlan.MarshalBinary()
	f.Add(vb)
	f.Add([]byte{})

	e := newTestEnv()
	e.count = 1
	c := newFakePacketConn()
	r := newARPResponder(e.cfg(famIPv4), ourMAC, c)
	defer r.close()
	r.setAddrs(addrs(vip4, vip4b))
	f.Fuzz(func(t *testing.T, b []byte) {
		c.take()
		r.handle(b)
		for _, w := range c.take() {
			if got := decodeARP(t, w); got.SPA != vip4 && got.SPA != vip4b {
				t.Fatalf("answered for %v", got.SPA)
			}
		}
	})
}

// FuzzNDPHandle parses arbitrary ICMPv6 bytes as ndp.Conn does and feeds
// the message to the NDP responder: no panic, answers only for owned
// addresses.
func FuzzNDPHandle(f *testing.F) {
	for _, m := range []ndp.Message{
		ns(vip6, clientMAC), ns(vip6, nil), ns(vip6b, ourMAC),
		na(vip6, otherMAC, false), na(vip6, ourMAC, true), &ndp.RouterSolicitation{},
	} {
		b, err := ndp.MarshalMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, clientIP6.AsSlice())
		f.Add(b, netip.IPv6Unspecified().AsSlice())
	}
	f.Add([]byte{135, 0, 0, 0}, []byte{1, 2, 3, 4})

	e := newTestEnv()
	e.count = 1
	c := newFakeNDPConn()
	r := newNDPResponder(e.cfg(famIPv6), ourMAC, c)
	defer r.close()
	r.setAddrs(addrs(vip6))
	f.Fuzz(func(t *testing.T, b, srcb []byte) {
		m, err := ndp.ParseMessage(b)
		if err != nil {
			return
		}
		src, _ := netip.AddrFromSlice(srcb)
		c.take()
		r.handle(m, src)
		for _, w := range c.take() {
			adv, ok := w.Msg.(*ndp.NeighborAdvertisement)
			if !ok || adv.TargetAddress != vip6 {
				t.Fatalf("wrote %#v", w.Msg)
			}
		}
	})
}
