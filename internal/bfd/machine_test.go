package bfd

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// link is two machines joined by a wire that delivers at once, run on a
// fake clock: step moves time to the next timer of either machine.
type link struct {
	t    *testing.T
	now  time.Time
	a, b *machine
	cut  bool
	// sent records every packet, by sender.
	sent map[*machine][]Packet
}

func fixed(f float64) func() float64 { return func() float64 { return f } }

func fast() timers {
	return timers{desiredMinTx: 300 * time.Millisecond, requiredMinRx: 300 * time.Millisecond, detectMult: 3}
}

func newLink(t *testing.T, ta, tb timers, passiveA, passiveB bool) *link {
	return &link{
		t:    t,
		now:  t0,
		a:    newMachine(t0, 0xa, ta, passiveA, fixed(0.999)),
		b:    newMachine(t0, 0xb, tb, passiveB, fixed(0.999)),
		sent: map[*machine][]Packet{},
	}
}

func (l *link) other(m *machine) *machine {
	if m == l.a {
		return l.b
	}
	return l.a
}

// step runs the earliest timer; false when none is armed.
func (l *link) step() bool {
	var next time.Time
	for _, m := range []*machine{l.a, l.b} {
		if t := m.next(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if next.IsZero() {
		return false
	}
	l.now = next
	for _, m := range []*machine{l.a, l.b} {
		if t := m.next(); t.IsZero() || l.now.Before(t) {
			continue
		}
		if m.advance(l.now) {
			p := m.packet()
			l.sent[m] = append(l.sent[m], p)
			if !l.cut {
				l.other(m).receive(l.now, p)
			}
		}
	}
	return true
}

// until steps until cond holds, for at most d of fake time.
func (l *link) until(d time.Duration, cond func() bool) time.Duration {
	start := l.now
	for !cond() {
		if !l.step() || l.now.Sub(start) > d {
			l.t.Fatalf("condition not met within %v (a %v, b %v)", d, l.a.state, l.b.state)
		}
	}
	return l.now.Sub(start)
}

func (l *link) bothUp() bool { return l.a.state == Up && l.b.state == Up }

func TestThreeWayHandshake(t *testing.T) {
	l := newLink(t, fast(), fast(), false, false)
	took := l.until(5*time.Second, l.bothUp)
	t.Logf("both Up after %v of fake time", took)
	// a sends Down, b answers Init, a goes Up and says so, b goes Up.
	if got := l.sent[l.a][0]; got.State != Down || got.YourDiscriminator != 0 {
		t.Errorf("a's first packet %+v, want Down with no Your Discriminator", got)
	}
	if l.a.remoteDisc != 0xb || l.b.remoteDisc != 0xa {
		t.Errorf("discriminators learned: a %#x, b %#x", l.a.remoteDisc, l.b.remoteDisc)
	}
	// Before Up the sessions advertise the slow rate; once Up the poll
	// sequence moves both to the profile's.
	if got := l.sent[l.a][0].DesiredMinTx; got != slowTx {
		t.Errorf("DesiredMinTx before Up = %v, want %v", got, slowTx)
	}
	l.until(2*time.Second, func() bool { return !l.a.polling && !l.b.polling })
	for _, m := range []*machine{l.a, l.b} {
		if m.useTx != 300*time.Millisecond || m.detectionTime() != 900*time.Millisecond {
			t.Errorf("after the poll: tx %v, detection %v; want 300ms, 900ms", m.useTx, m.detectionTime())
		}
	}
}

func TestDetectionTimeout(t *testing.T) {
	l := newLink(t, fast(), fast(), false, false)
	l.until(5*time.Second, l.bothUp)
	l.until(2*time.Second, func() bool { return !l.a.polling && !l.b.polling })
	l.cut = true
	lastRx := l.a.detectAt.Add(-l.a.detectionTime())
	l.until(2*time.Second, func() bool { return l.a.state == Down })
	if got := l.now.Sub(lastRx); got != 900*time.Millisecond {
		t.Errorf("a went Down %v after the last packet, want the detection time 900ms", got)
	}
	if l.a.diag != DiagTimeExpired {
		t.Errorf("diag %v, want %v", l.a.diag, DiagTimeExpired)
	}
	if l.a.remoteDisc != 0 {
		t.Errorf("remote discriminator %#x kept after the timeout", l.a.remoteDisc)
	}
	if p := l.a.packet(); p.DesiredMinTx != slowTx || p.Diag != DiagTimeExpired {
		t.Errorf("packet after the timeout %+v: want slow rate and diag 1", p)
	}
	// The link comes back: the sessions meet again.
	l.cut = false
	l.until(10*time.Second, l.bothUp)
}

func TestRemoteAdminDown(t *testing.T) {
	l := newLink(t, fast(), fast(), false, false)
	l.until(5*time.Second, l.bothUp)
	l.b.adminDown(l.now)
	p := l.b.packet()
	if p.State != AdminDown || p.Diag != DiagAdminDown {
		t.Fatalf("b's packet %+v, want AdminDown with diag 7", p)
	}
	l.a.receive(l.now, p)
	if l.a.state != Down || l.a.diag != DiagNeighborDown {
		t.Errorf("a is %v with %v, want Down with %v", l.a.state, l.a.diag, DiagNeighborDown)
	}
	// An AdminDown session ignores the peer.
	l.b.receive(l.now, l.a.packet())
	if l.b.state != AdminDown {
		t.Errorf("b left AdminDown: %v", l.b.state)
	}
}

func TestRemoteDown(t *testing.T) {
	l := newLink(t, fast(), fast(), false, false)
	l.until(5*time.Second, l.bothUp)
	p := l.b.packet()
	p.State, p.Poll, p.Final = Down, false, false
	l.a.receive(l.now, p)
	if l.a.state != Down || l.a.diag != DiagNeighborDown {
		t.Errorf("a is %v with %v, want Down with %v", l.a.state, l.a.diag, DiagNeighborDown)
	}
}

func TestPollFinalOnIntervalChange(t *testing.T) {
	l := newLink(t, fast(), fast(), false, false)
	l.until(5*time.Second, l.bothUp)
	l.until(2*time.Second, func() bool { return !l.a.polling && !l.b.polling })

	// a slows down to 1s and wants packets every 100ms.
	l.a.setTimers(l.now, timers{desiredMinTx: time.Second, requiredMinRx: 100 * time.Millisecond, detectMult: 3}, false)
	if !l.a.polling {
		t.Fatal("a changed its timers while Up without polling")
	}
	// Until the Final: the old, shorter transmit interval and the old,
	// longer receive interval.
	if l.a.useTx != 300*time.Millisecond || l.a.useRx != 300*time.Millisecond {
		t.Errorf("during the poll a uses tx %v rx %v, want the old 300ms both", l.a.useTx, l.a.useRx)
	}
	n := len(l.sent[l.a])
	l.until(time.Second, func() bool { return !l.a.polling })
	var polled, finaled bool
	for _, p := range l.sent[l.a][n:] {
		polled = polled || p.Poll
	}
	for _, p := range l.sent[l.b] {
		finaled = finaled || p.Final
	}
	if !polled || !finaled {
		t.Errorf("poll sent %v, final answered %v", polled, finaled)
	}
	if l.a.useTx != time.Second || l.a.useRx != 100*time.Millisecond {
		t.Errorf("after the Final a uses tx %v rx %v, want 1s and 100ms", l.a.useTx, l.a.useRx)
	}
	// b now sends every 300ms (its own floor) and a detects after 900ms;
	// b detects a after 3 x 1s.
	if got := l.a.detectionTime(); got != 900*time.Millisecond {
		t.Errorf("a's detection time %v, want 900ms", got)
	}
	if got := l.b.detectionTime(); got != 3*time.Second {
		t.Errorf("b's detection time %v, want 3s", got)
	}
	if !l.bothUp() {
		t.Errorf("the change took the session down: a %v, b %v", l.a.state, l.b.state)
	}
}

func TestChangeDuringPoll(t *testing.T) {
	l := newLink(t, fast(), fast(), false, false)
	l.until(5*time.Second, l.bothUp)
	l.until(2*time.Second, func() bool { return !l.a.polling && !l.b.polling })
	l.a.setTimers(l.now, timers{desiredMinTx: 500 * time.Millisecond, requiredMinRx: 300 * time.Millisecond, detectMult: 3}, false)
	l.a.setTimers(l.now, timers{desiredMinTx: 700 * time.Millisecond, requiredMinRx: 300 * time.Millisecond, detectMult: 3}, false)
	l.until(5*time.Second, func() bool { return !l.a.polling })
	if l.a.useTx != 700*time.Millisecond {
		t.Errorf("after the polls a uses tx %v, want 700ms", l.a.useTx)
	}
}

func TestPassiveWaits(t *testing.T) {
	l := newLink(t, fast(), fast(), true, true)
	if l.step() {
		t.Fatal("two passive sessions have a timer armed")
	}
	if len(l.sent[l.a])+len(l.sent[l.b]) != 0 {
		t.Fatal("a passive session sent before hearing anything")
	}
	// a becomes active: b answers and both come Up.
	l.a.setTimers(l.now, fast(), false)
	l.a.nextTx = l.now
	took := l.until(5*time.Second, l.bothUp)
	if first := l.sent[l.b]; len(first) == 0 || first[0].YourDiscriminator != 0xa {
		t.Errorf("b's first packet does not answer a: %+v", first)
	}
	t.Logf("Up %v after the active side started", took)
}

func TestZeroYourDiscriminatorOnlyWhileDown(t *testing.T) {
	l := newLink(t, fast(), fast(), false, false)
	l.until(5*time.Second, l.bothUp)
	p := l.b.packet()
	p.YourDiscriminator = 0
	if l.a.receive(l.now, p) {
		t.Error("an Up session took a packet with no Your Discriminator")
	}
	p.YourDiscriminator = 0x1234
	if l.a.receive(l.now, p) {
		t.Error("a session took a packet for another discriminator")
	}
}

func TestRemoteMinRxZeroStopsTransmission(t *testing.T) {
	m := newMachine(t0, 1, fast(), false, fixed(0))
	m.advance(t0)
	m.receive(t0, Packet{State: Down, DetectMult: 3, MyDiscriminator: 2, DesiredMinTx: time.Second})
	if !m.nextTx.IsZero() {
		t.Errorf("still transmitting at %v although the peer wants no packets", m.nextTx)
	}
	// A poll is still answered.
	m.receive(t0, Packet{State: Down, DetectMult: 3, MyDiscriminator: 2, Poll: true, YourDiscriminator: 1})
	if !m.advance(t0) || !m.packet().Final {
		t.Error("a poll was not answered")
	}
}

func TestJitter(t *testing.T) {
	for _, c := range []struct {
		mult uint8
		r    float64
		want time.Duration
	}{
		{3, 0, 750 * time.Millisecond},
		{3, 0.999999, time.Second},
		{1, 0.999999, 900 * time.Millisecond},
	} {
		m := newMachine(t0, 1, timers{desiredMinTx: time.Second, requiredMinRx: time.Second, detectMult: c.mult}, false, fixed(c.r))
		got := m.jittered(time.Second)
		if d := c.want - got; d < 0 || d > time.Millisecond {
			t.Errorf("mult %d, r %v: %v, want just under %v", c.mult, c.r, got, c.want)
		}
	}
}
