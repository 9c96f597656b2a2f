package bfd

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Profile is how a session runs: the fields MetalLB's BFDProfile has.
// Zero values take the defaults.
type Profile struct {
	// ReceiveInterval is the least interval at which this end wants to
	// receive packets; default 300ms.
	ReceiveInterval time.Duration
	// TransmitInterval is the least interval at which this end wants to
	// send; default 300ms.
	TransmitInterval time.Duration
	// DetectMultiplier is how many intervals without a packet the peer
	// waits before it declares the session down; default 3.
	DetectMultiplier uint8
	// EchoMode is not supported: the echo function needs packets looped
	// back by the peer's forwarding plane, which a userspace daemon
	// cannot answer for. True is refused.
	EchoMode bool
	// Passive sessions send nothing until the peer has sent.
	Passive bool
	// MinimumTTL is the least TTL a multihop packet may arrive with;
	// default 254 (one router away), as FRR's. Single-hop packets must
	// always arrive with 255, so it is ignored for them.
	MinimumTTL uint8
}

// The defaults and bounds of Profile: the bounds are MetalLB's.
const (
	DefaultInterval         = 300 * time.Millisecond
	DefaultDetectMultiplier = 3
	DefaultMinimumTTL       = 254
	MinInterval             = 10 * time.Millisecond
	MaxInterval             = 60 * time.Second
)

// Key identifies a session.
type Key struct {
	Peer, Local netip.Addr
	Multihop    bool
	// Interface is a device or VRF name the session's sockets are bound
	// to; empty for none.
	Interface string
}

func (k Key) String() string {
	var b strings.Builder
	b.WriteString(k.Peer.String())
	if k.Local.IsValid() {
		b.WriteString(" from " + k.Local.String())
	}
	if k.Interface != "" {
		b.WriteString(" dev " + k.Interface)
	}
	if k.Multihop {
		b.WriteString(" multihop")
	}
	return b.String()
}

// Session is one BFD session the Manager is asked to run.
type Session struct {
	// Peer is the router's address. Local is the address packets are
	// sent from and received on; when it is not valid the kernel
	// chooses, and packets to any local address are accepted.
	Peer, Local netip.Addr
	// Multihop selects RFC 5883 (port 4784, MinimumTTL) over RFC 5881.
	Multihop  bool
	Interface string
	Profile   Profile
}

// Key returns the session's key.
func (s Session) Key() Key {
	return Key{Peer: s.Peer, Local: s.Local, Multihop: s.Multihop, Interface: s.Interface}
}

// normalize fills in the defaults and checks the session.
func (s Session) normalize() (Session, error) {
	p := &s.Profile
	if !s.Peer.IsValid() || s.Peer.IsUnspecified() {
		return s, errors.New("peer address is missing")
	}
	if s.Local.IsValid() && s.Local.Unmap().Is4() != s.Peer.Unmap().Is4() {
		return s, fmt.Errorf("local address %s and peer %s are of different families", s.Local, s.Peer)
	}
	s.Peer = s.Peer.Unmap()
	if s.Local.IsValid() {
		s.Local = s.Local.Unmap()
		if s.Local.IsUnspecified() {
			s.Local = netip.Addr{}
		}
	}
	if p.EchoMode {
		return s, errors.New("echo mode is not supported: herald's BFD runs in userspace and has no forwarding plane to loop echo packets through")
	}
	for _, iv := range []struct {
		name string
		v    *time.Duration
	}{{"receive interval", &p.ReceiveInterval}, {"transmit interval", &p.TransmitInterval}} {
		if *iv.v == 0 {
			*iv.v = DefaultInterval
		}
		if *iv.v < MinInterval || *iv.v > MaxInterval {
			return s, fmt.Errorf("%s %v is outside %v-%v", iv.name, *iv.v, MinInterval, MaxInterval)
		}
	}
	switch {
	case p.DetectMultiplier == 0:
		p.DetectMultiplier = DefaultDetectMultiplier
	case p.DetectMultiplier < 2:
		return s, fmt.Errorf("detect multiplier %d is below 2", p.DetectMultiplier)
	}
	if p.MinimumTTL == 0 {
		p.MinimumTTL = DefaultMinimumTTL
	}
	return s, nil
}

func (s Session) timers() timers {
	return timers{
		desiredMinTx:  s.Profile.TransmitInterval,
		requiredMinRx: s.Profile.ReceiveInterval,
		detectMult:    s.Profile.DetectMultiplier,
	}
}
