package bfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// State is a session state as carried in the Sta field of a control
// packet (RFC 5880 §4.1); the numbers are the wire values.
type State uint8

// The session states.
const (
	AdminDown State = 0
	Down      State = 1
	Init      State = 2
	Up        State = 3
)

func (s State) String() string {
	switch s {
	case AdminDown:
		return "AdminDown"
	case Down:
		return "Down"
	case Init:
		return "Init"
	case Up:
		return "Up"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Diag says why a session last left Up (RFC 5880 §4.1); the numbers are
// the wire values.
type Diag uint8

// The diagnostic codes herald sends or may receive.
const (
	DiagNone                Diag = 0
	DiagTimeExpired         Diag = 1
	DiagEchoFailed          Diag = 2
	DiagNeighborDown        Diag = 3
	DiagForwardingReset     Diag = 4
	DiagPathDown            Diag = 5
	DiagConcatPathDown      Diag = 6
	DiagAdminDown           Diag = 7
	DiagReverseConcatPathDn Diag = 8
)

func (d Diag) String() string {
	names := [...]string{
		"None", "ControlDetectionTimeExpired", "EchoFunctionFailed",
		"NeighborSignaledSessionDown", "ForwardingPlaneReset", "PathDown",
		"ConcatenatedPathDown", "AdministrativelyDown", "ReverseConcatenatedPathDown",
	}
	if int(d) < len(names) {
		return names[d]
	}
	return fmt.Sprintf("Diag(%d)", uint8(d))
}

// Packet is a BFD control packet without its authentication section,
// which herald never sends and always refuses.
type Packet struct {
	Diag  Diag
	State State
	// Poll and Final carry the poll sequence that confirms a change of
	// timers (RFC 5880 §6.5).
	Poll, Final bool
	// ControlPlaneIndependent is always false when herald sends: BFD runs
	// in the speaker's process and shares its fate.
	ControlPlaneIndependent bool
	AuthPresent             bool
	Demand                  bool
	Multipoint              bool
	DetectMult              uint8
	MyDiscriminator         uint32
	YourDiscriminator       uint32
	// The intervals travel in microseconds.
	DesiredMinTx, RequiredMinRx, RequiredMinEchoRx time.Duration
}

const (
	version     = 1
	headerLen   = 24
	maxInterval = time.Duration(1<<32-1) * time.Microsecond
)

// Errors of Parse, so that a caller can count them by cause.
var (
	ErrShort        = errors.New("bfd: packet shorter than its header")
	ErrVersion      = errors.New("bfd: unsupported version")
	ErrLength       = errors.New("bfd: length field disagrees with the packet")
	ErrDetectMult   = errors.New("bfd: detect multiplier is zero")
	ErrMultipoint   = errors.New("bfd: multipoint bit set")
	ErrMyDisc       = errors.New("bfd: my discriminator is zero")
	ErrAuth         = errors.New("bfd: authenticated packet but authentication is not configured")
	ErrPollAndFinal = errors.New("bfd: both poll and final set")
)

// Parse decodes a control packet and applies the checks of RFC 5880
// §6.8.6 that need nothing but the packet. Authentication is never
// configured in herald, so a packet with the A bit is refused (the RFC
// says to discard it) rather than parsed.
func Parse(b []byte) (Packet, error) {
	var p Packet
	if len(b) < headerLen {
		return p, ErrShort
	}
	if v := b[0] >> 5; v != version {
		return p, fmt.Errorf("%w %d", ErrVersion, v)
	}
	p.Diag = Diag(b[0] & 0x1f)
	p.State = State(b[1] >> 6)
	p.Poll = b[1]&0x20 != 0
	p.Final = b[1]&0x10 != 0
	p.ControlPlaneIndependent = b[1]&0x08 != 0
	p.AuthPresent = b[1]&0x04 != 0
	p.Demand = b[1]&0x02 != 0
	p.Multipoint = b[1]&0x01 != 0
	p.DetectMult = b[2]
	length := int(b[3])
	least := headerLen
	if p.AuthPresent {
		// The auth section has at least type and length.
		least += 2
	}
	if length < least || length > len(b) {
		return p, fmt.Errorf("%w: length %d, %d bytes received", ErrLength, length, len(b))
	}
	if p.AuthPresent {
		return p, ErrAuth
	}
	if p.DetectMult == 0 {
		return p, ErrDetectMult
	}
	if p.Multipoint {
		return p, ErrMultipoint
	}
	if p.Poll && p.Final {
		return p, ErrPollAndFinal
	}
	p.MyDiscriminator = binary.BigEndian.Uint32(b[4:])
	if p.MyDiscriminator == 0 {
		return p, ErrMyDisc
	}
	p.YourDiscriminator = binary.BigEndian.Uint32(b[8:])
	p.DesiredMinTx = usec(b[12:])
	p.RequiredMinRx = usec(b[16:])
	p.RequiredMinEchoRx = usec(b[20:])
	return p, nil
}

func usec(b []byte) time.Duration {
	return time.Duration(binary.BigEndian.Uint32(b)) * time.Microsecond
}

// Append encodes p after b. Intervals are rounded down to microseconds
// and saturate at the field's maximum (about 71 minutes).
func (p Packet) Append(b []byte) []byte {
	flags := byte(p.State&3) << 6
	for _, f := range []struct {
		set bool
		bit byte
	}{
		{p.Poll, 0x20}, {p.Final, 0x10}, {p.ControlPlaneIndependent, 0x08},
		{p.AuthPresent, 0x04}, {p.Demand, 0x02}, {p.Multipoint, 0x01},
	} {
		if f.set {
			flags |= f.bit
		}
	}
	b = append(b, version<<5|byte(p.Diag&0x1f), flags, p.DetectMult, headerLen)
	b = binary.BigEndian.AppendUint32(b, p.MyDiscriminator)
	b = binary.BigEndian.AppendUint32(b, p.YourDiscriminator)
	for _, d := range []time.Duration{p.DesiredMinTx, p.RequiredMinRx, p.RequiredMinEchoRx} {
		d = min(max(d, 0), maxInterval)
		b = binary.BigEndian.AppendUint32(b, uint32(d/time.Microsecond))
	}
	return b
}
