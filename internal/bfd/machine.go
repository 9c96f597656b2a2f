package bfd

import "time"

// slowTx is the least transmit interval advertised while a session is not
// Up (RFC 5880 §6.8.3): sessions towards a dead peer cost little.
const slowTx = time.Second

// timers are the values of a session that a profile sets.
type timers struct {
	desiredMinTx, requiredMinRx time.Duration
	detectMult                  uint8
}

// machine is the state machine of one session (RFC 5880 §6.8), with no
// socket and no clock of its own: every call is given the time, and the
// caller sends what packet returns when advance says so, and calls
// advance again at next. That keeps it deterministic under test and lets
// one goroutine run every session on one timer.
type machine struct {
	cfg     timers
	passive bool
	// jitter returns a number in [0, 1); it is injected so that tests
	// know the intervals.
	jitter func() float64

	state       State
	diag        Diag
	localDisc   uint32
	remoteDisc  uint32
	remoteState State
	remoteMinRx time.Duration // the peer's RequiredMinRx
	remoteMinTx time.Duration // the peer's DesiredMinTx
	remoteMult  uint8
	heard       bool

	// advTx and advRx are what the packets advertise. useTx and useRx
	// are what the session runs on: while a poll sequence is confirming a
	// change they keep whichever of the old and new values is safe for
	// the peer (the smaller transmit interval, the larger receive one).
	advTx, advRx time.Duration
	useTx, useRx time.Duration
	// polling is set while our packets carry Poll; pollTx and pollRx are
	// the values that poll announces.
	polling        bool
	pollTx, pollRx time.Duration
	// owesFinal is set when the peer polled and the answer is not sent.
	owesFinal bool

	nextTx   time.Time // zero: not transmitting
	detectAt time.Time // zero: detection timer not armed
}

func newMachine(now time.Time, disc uint32, cfg timers, passive bool, jitter func() float64) *machine {
	m := &machine{
		cfg:       cfg,
		passive:   passive,
		jitter:    jitter,
		state:     Down,
		localDisc: disc,
		// The RFC's initial value: one microsecond, so that an active
		// session transmits before it has heard anything.
		remoteMinRx: time.Microsecond,
		remoteState: Down,
	}
	m.advTx, m.advRx = m.wanted()
	m.useTx, m.useRx = m.advTx, m.advRx
	if !passive {
		m.nextTx = now
	}
	return m
}

// wanted is what the session should advertise in its present state.
func (m *machine) wanted() (tx, rx time.Duration) {
	tx = m.cfg.desiredMinTx
	if m.state != Up {
		tx = max(tx, slowTx)
	}
	return tx, m.cfg.requiredMinRx
}

// setTimers applies a changed profile.
func (m *machine) setTimers(now time.Time, cfg timers, passive bool) {
	m.cfg, m.passive = cfg, passive
	m.retime(now)
}

// retime starts advertising what wanted says, through a poll sequence
// when the session is Up (RFC 5880 §6.8.3): the peer must have adjusted
// its detection time before we slow down, and we must keep the old
// detection time until it has slowed down.
func (m *machine) retime(now time.Time) {
	tx, rx := m.wanted()
	if tx == m.advTx && rx == m.advRx {
		return
	}
	m.advTx, m.advRx = tx, rx
	if m.state != Up {
		m.useTx, m.useRx = tx, rx
		m.polling = false
	} else {
		m.useTx, m.useRx = min(m.useTx, tx), max(m.useRx, rx)
		if !m.polling {
			m.startPoll()
		}
	}
	m.pullTx(now)
}

func (m *machine) startPoll() {
	m.polling = true
	m.pollTx, m.pollRx = m.advTx, m.advRx
}

// finishPoll takes what the confirmed poll announced and, if the profile
// changed again meanwhile, polls for that too: only one poll sequence may
// run at a time.
func (m *machine) finishPoll() {
	m.polling = false
	m.useTx, m.useRx = m.pollTx, m.pollRx
	if m.pollTx != m.advTx || m.pollRx != m.advRx {
		m.useTx, m.useRx = min(m.useTx, m.advTx), max(m.useRx, m.advRx)
		m.startPoll()
	}
}

// txInterval is the interval between periodic packets before jitter; 0
// means none are sent (the peer asked for none).
func (m *machine) txInterval() time.Duration {
	if m.remoteMinRx == 0 {
		return 0
	}
	return max(m.useTx, m.remoteMinRx)
}

// detectionTime is how long the session survives without a packet
// (RFC 5880 §6.8.4, asynchronous mode): the peer's multiplier times the
// interval it actually sends at.
func (m *machine) detectionTime() time.Duration {
	return time.Duration(m.remoteMult) * max(m.useRx, m.remoteMinTx)
}

// jittered takes 0–25% off an interval (RFC 5880 §6.8.7), at least 10%
// with a multiplier of 1, so that sessions do not synchronise.
func (m *machine) jittered(d time.Duration) time.Duration {
	spread := 0.25
	if m.cfg.detectMult == 1 {
		spread = 0.15
	}
	return time.Duration(float64(d) * (0.75 + spread*m.jitter()))
}

// pullTx brings the next periodic packet forward when the interval has
// shrunk, so that a session going Up speeds up at once.
func (m *machine) pullTx(now time.Time) {
	if m.nextTx.IsZero() {
		return
	}
	iv := m.txInterval()
	if iv == 0 {
		return
	}
	if t := now.Add(m.jittered(iv)); t.Before(m.nextTx) {
		m.nextTx = t
	}
}

// receive processes a control packet that Parse accepted and that the
// caller matched to this session (RFC 5880 §6.8.6). It reports whether
// the packet was used; a packet with no Your Discriminator is only valid
// while the session is Down.
func (m *machine) receive(now time.Time, p Packet) bool {
	if p.YourDiscriminator == 0 && m.state != Down && m.state != AdminDown {
		return false
	}
	if p.YourDiscriminator != 0 && p.YourDiscriminator != m.localDisc {
		return false
	}
	m.remoteDisc = p.MyDiscriminator
	m.remoteState = p.State
	m.remoteMinRx = p.RequiredMinRx
	m.remoteMinTx = p.DesiredMinTx
	m.remoteMult = p.DetectMult
	if p.Final && m.polling {
		m.finishPoll()
	}
	if m.state == AdminDown {
		return true
	}
	if !m.heard {
		m.heard = true
		if m.passive && m.nextTx.IsZero() {
			m.nextTx = now
		}
	}
	switch {
	case p.State == AdminDown:
		if m.state != Down {
			m.to(now, Down, DiagNeighborDown)
		}
	case m.state == Down:
		switch p.State {
		case Down:
			m.to(now, Init, DiagNone)
		case Init:
			m.to(now, Up, DiagNone)
		}
	case m.state == Init:
		if p.State == Init || p.State == Up {
			m.to(now, Up, DiagNone)
		}
	case m.state == Up:
		if p.State == Down {
			m.to(now, Down, DiagNeighborDown)
		}
	}
	if p.Poll {
		m.owesFinal = true
		m.nextTx = now
	}
	switch {
	case m.txInterval() == 0 && !m.owesFinal:
		m.nextTx = time.Time{}
	case m.nextTx.IsZero():
		m.nextTx = now
	default:
		m.pullTx(now)
	}
	m.detectAt = now.Add(m.detectionTime())
	return true
}

// to moves the session to state s with diagnostic d. Diag keeps the
// reason the session last went down (and is sent until it is Up again),
// so that the peer can log why.
func (m *machine) to(now time.Time, s State, d Diag) {
	if s == m.state {
		return
	}
	m.state = s
	if d != DiagNone || s == Up {
		m.diag = d
	}
	m.retime(now)
}

// advance handles the timers due at now and reports whether a packet is
// to be sent.
func (m *machine) advance(now time.Time) bool {
	if !m.detectAt.IsZero() && !now.Before(m.detectAt) {
		m.detectAt = time.Time{}
		// The peer is forgotten (RFC 5880 §6.8.1): a restarted peer
		// has a new discriminator.
		m.remoteDisc = 0
		m.remoteState = Down
		if m.state == Init || m.state == Up {
			m.to(now, Down, DiagTimeExpired)
		}
	}
	if m.nextTx.IsZero() || now.Before(m.nextTx) {
		return false
	}
	if iv := m.txInterval(); iv > 0 {
		m.nextTx = now.Add(m.jittered(iv))
	} else {
		m.nextTx = time.Time{}
	}
	return true
}

// next is when advance must be called again; zero when never.
func (m *machine) next() time.Time {
	switch {
	case m.nextTx.IsZero():
		return m.detectAt
	case m.detectAt.IsZero() || m.nextTx.Before(m.detectAt):
		return m.nextTx
	}
	return m.detectAt
}

// packet is the control packet to send now. Poll and Final may not
// travel together, so a Final owed goes first and the poll resumes in the
// next packet.
func (m *machine) packet() Packet {
	p := Packet{
		Diag:              m.diag,
		State:             m.state,
		DetectMult:        m.cfg.detectMult,
		MyDiscriminator:   m.localDisc,
		YourDiscriminator: m.remoteDisc,
		DesiredMinTx:      m.advTx,
		RequiredMinRx:     m.advRx,
	}
	if m.owesFinal {
		p.Final = true
		m.owesFinal = false
	} else {
		p.Poll = m.polling
	}
	return p
}

// adminDown takes the session down on purpose (RFC 5880 §6.8.16): the
// peer goes Down with NeighborSignaledSessionDown instead of waiting for
// its detection time, and RFC 5882 asks it not to tear down its clients
// for that.
func (m *machine) adminDown(now time.Time) {
	m.to(now, AdminDown, DiagAdminDown)
	m.detectAt = time.Time{}
}
