package bfd

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// A packet as FRR's bfdd sends it while coming up: Init, discriminators
// 0x10 and 0x20, 1s / 300ms / 50ms, multiplier 3.
var wire = []byte{
	0x20, 0x80, 0x03, 0x18,
	0x00, 0x00, 0x00, 0x10,
	0x00, 0x00, 0x00, 0x20,
	0x00, 0x0f, 0x42, 0x40,
	0x00, 0x04, 0x93, 0xe0,
	0x00, 0x00, 0xc3, 0x50,
}

func TestParseWire(t *testing.T) {
	p, err := Parse(wire)
	if err != nil {
		t.Fatal(err)
	}
	want := Packet{
		State: Init, DetectMult: 3, MyDiscriminator: 0x10, YourDiscriminator: 0x20,
		DesiredMinTx: time.Second, RequiredMinRx: 300 * time.Millisecond, RequiredMinEchoRx: 50 * time.Millisecond,
	}
	if p != want {
		t.Errorf("got %+v\nwant %+v", p, want)
	}
	if got := p.Append(nil); !bytes.Equal(got, wire) {
		t.Errorf("re-encoded as % x", got)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, p := range []Packet{
		{State: Down, DetectMult: 1, MyDiscriminator: 1},
		{State: Up, Diag: DiagTimeExpired, Poll: true, DetectMult: 255, MyDiscriminator: 0xffffffff, YourDiscriminator: 7,
			DesiredMinTx: 10 * time.Millisecond, RequiredMinRx: time.Microsecond},
		{State: AdminDown, Diag: DiagAdminDown, Final: true, ControlPlaneIndependent: true, Demand: true,
			DetectMult: 5, MyDiscriminator: 2, DesiredMinTx: maxInterval, RequiredMinRx: maxInterval, RequiredMinEchoRx: maxInterval},
	} {
		b := p.Append(nil)
		if len(b) != headerLen {
			t.Fatalf("%d bytes", len(b))
		}
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		if got != p {
			t.Errorf("got %+v\nwant %+v", got, p)
		}
	}
}

func TestIntervalsSaturate(t *testing.T) {
	p := Packet{State: Up, DetectMult: 3, MyDiscriminator: 1, DesiredMinTx: 100 * time.Hour, RequiredMinRx: -time.Second}
	got, err := Parse(p.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got.DesiredMinTx != maxInterval || got.RequiredMinRx != 0 {
		t.Errorf("got %v and %v", got.DesiredMinTx, got.RequiredMinRx)
	}
}

func TestParseRejects(t *testing.T) {
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), wire...)) }
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short", wire[:23], ErrShort},
		{"version 0", mod(func(b []byte) []byte { b[0] &^= 0xe0; return b }), ErrVersion},
		{"length below header", mod(func(b []byte) []byte { b[3] = 23; return b }), ErrLength},
		{"length past the data", mod(func(b []byte) []byte { b[3] = 30; return b }), ErrLength},
		{"multiplier 0", mod(func(b []byte) []byte { b[2] = 0; return b }), ErrDetectMult},
		{"multipoint", mod(func(b []byte) []byte { b[1] |= 0x01; return b }), ErrMultipoint},
		{"my discriminator 0", mod(func(b []byte) []byte { copy(b[4:8], []byte{0, 0, 0, 0}); return b }), ErrMyDisc},
		{"poll and final", mod(func(b []byte) []byte { b[1] |= 0x30; return b }), ErrPollAndFinal},
		// Simple password auth: type 1, length 4, key ID, one byte.
		{"authenticated", mod(func(b []byte) []byte {
			b[1] |= 0x04
			b[3] = 28
			return append(b, 1, 4, 1, 'x')
		}), ErrAuth},
		{"A bit without an auth section", mod(func(b []byte) []byte { b[1] |= 0x04; return b }), ErrLength},
	} {
		if _, err := Parse(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// Trailing bytes past the length (padding) are allowed.
	if _, err := Parse(append(append([]byte(nil), wire...), 0, 0)); err != nil {
		t.Errorf("padding: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(wire)
	f.Add((Packet{State: Up, Poll: true, DetectMult: 3, MyDiscriminator: 9}).Append(nil))
	f.Add([]byte{0x20, 0x04, 0x03, 0x1a})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parses encodes to a header that parses to the same
		// packet and to the same 24 bytes, but for the length: what
		// follows the header without authentication is not kept.
		enc := p.Append(nil)
		q, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-encoded packet rejected: %v", err)
		}
		if q != p {
			t.Fatalf("round trip changed %+v into %+v", p, q)
		}
		if !bytes.Equal(enc[:3], b[:3]) || !bytes.Equal(enc[4:], b[4:headerLen]) {
			t.Fatalf("re-encoded % x, received % x", enc, b[:headerLen])
		}
	})
}
