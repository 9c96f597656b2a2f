package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	vnetns "github.com/vishvananda/netns"

	"github.com/heraldlb/herald/e2e/lab/topology"
)

// inNamespace runs f on a thread switched into network namespace ns;
// sockets f opens stay in ns.
func inNamespace(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = orig.Close() }()
		target, err := vnetns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = target.Close() }()
		if err := vnetns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := f()
		if err := vnetns.Set(orig); err != nil {
			// The thread stays locked and is retired with this goroutine.
			errc <- errors.Join(ferr, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// ARPSeen is one ARP packet a watcher saw claiming its address.
type ARPSeen struct {
	At  time.Time
	MAC string // sender hardware address, lower case
	Op  arp.Operation
	// ToWatcher: a reply addressed to the watcher's own MAC, that is an
	// answer to its requests (a gratuitous one is broadcast).
	ToWatcher bool
}

// ARPWatcher sends ARP requests for one address from a node's switch
// interface at a fixed interval and records, with receive times, every ARP
// packet (reply or gratuitous) whose sender claims that address.
type ARPWatcher struct {
	c    *arp.Client
	addr netip.Addr
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu   sync.Mutex
	seen []ARPSeen
	sent []time.Time // when each request went out
}

// WatchARP starts an ARPWatcher in node's namespace; interval 0 only
// listens. Stop it when done.
func (l *Lab) WatchARP(node string, addr netip.Addr, interval time.Duration) (*ARPWatcher, error) {
	iface := l.Topo.Iface(node, topology.RoleSwitch)
	w := &ARPWatcher{addr: addr}
	err := inNamespace(l.Node(node).Namespace, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		w.c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ARP watcher on %s: %w", node, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for ctx.Err() == nil {
			_ = w.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			p, _, err := w.c.Read()
			now := time.Now()
			if err != nil || p.SenderIP != addr {
				continue
			}
			w.mu.Lock()
			w.seen = append(w.seen, ARPSeen{At: now, MAC: strings.ToLower(p.SenderHardwareAddr.String()), Op: p.Operation,
				ToWatcher: bytes.Equal(p.TargetHardwareAddr, w.c.HardwareAddr())})
			w.mu.Unlock()
		}
	}()
	if interval > 0 {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				at := time.Now()
				if w.c.Request(addr) == nil {
					w.mu.Lock()
					w.sent = append(w.sent, at)
					w.mu.Unlock()
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	return w, nil
}

// Seen returns what the watcher saw so far.
func (w *ARPWatcher) Seen() []ARPSeen {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}

// Unanswered counts the requests sent (within [from, to)) that no reply
// to the watcher followed within within, and how many were sent then.
// Gratuitous ARP does not count as an answer.
func (w *ARPWatcher) Unanswered(from, to time.Time, within time.Duration) (unanswered, sent int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, at := range w.sent {
		if at.Before(from) || !at.Before(to) {
			continue
		}
		sent++
		answered := false
		for _, s := range w.seen {
			if s.Op == arp.OperationReply && s.ToWatcher && !s.At.Before(at) && s.At.Sub(at) < within {
				answered = true
				break
			}
		}
		if !answered {
			unanswered++
		}
	}
	return unanswered, sent
}

// FirstFrom returns when mac first claimed the address after t.
func (w *ARPWatcher) FirstFrom(mac string, after time.Time) (time.Time, bool) {
	for _, s := range w.Seen() {
		if s.MAC == strings.ToLower(mac) && s.At.After(after) {
			return s.At, true
		}
	}
	return time.Time{}, false
}

// LastFrom returns when mac last claimed the address.
func (w *ARPWatcher) LastFrom(mac string) (time.Time, bool) {
	seen := w.Seen()
	for i := len(seen) - 1; i >= 0; i-- {
		if seen[i].MAC == strings.ToLower(mac) {
			return seen[i].At, true
		}
	}
	return time.Time{}, false
}

// Stop ends the watcher and closes its socket.
func (w *ARPWatcher) Stop() {
	w.stop()
	w.wg.Wait()
	_ = w.c.Close()
}
