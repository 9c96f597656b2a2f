package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkUpFor watches the interface that carries the node's own address:
// with it down, this node cannot forward what it attracts. The returned
// func remembers the link: call it from one goroutine (Health.Run).
func LinkUpFor(bind netip.Addr) func() (bool, error) {
	family := netlink.FAMILY_V4
	if bind.Is6() {
		family = netlink.FAMILY_V6
	}
	holds := func(addrs []netlink.Addr) (int, bool) {
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == bind {
				return a.LinkIndex, true
			}
		}
		return 0, false
	}
	// The check runs every 500 ms: it asks the kernel about the one link
	// that held the address last time, and dumps all addresses only when
	// that link no longer holds it (a node with a hundred Pods has a
	// hundred veths; listing each one's addresses was most of an idle
	// speaker's netlink work).
	// One netlink handle for the life of the check: the package-level
	// functions open and close a socket per request, which was most of
	// what remained of the check's cost.
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		nl = &netlink.Handle{} // the zero Handle opens a socket per request
	}
	index := 0
	return func() (bool, error) {
		var link netlink.Link
		if index > 0 {
			if l, err := nl.LinkByIndex(index); err == nil {
				if addrs, err := nl.AddrList(l, family); err == nil {
					if _, ok := holds(addrs); ok {
						link = l
					}
				}
			}
		}
		if link == nil {
			addrs, err := nl.AddrList(nil, family)
			if err != nil {
				return false, fmt.Errorf("listing addresses: %w", err)
			}
			i, ok := holds(addrs)
			if !ok {
				index = 0
				return false, fmt.Errorf("no interface holds %s", bind)
			}
			if link, err = nl.LinkByIndex(i); err != nil {
				return false, fmt.Errorf("reading the link holding %s: %w", bind, err)
			}
			index = i
		}
		return link.Attrs().Flags&net.FlagUp != 0 && link.Attrs().OperState != netlink.OperDown, nil
	}
}

// LinkStates judges interfaces by name: those a layer-2 pool names, on
// which this node answers for that pool's addresses. Use one from one
// goroutine (Health.Run); Subscribe may run beside it.
type LinkStates struct {
	nl *netlink.Handle
}

// NewLinkStates opens the netlink handle the checks share.
func NewLinkStates() *LinkStates {
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		nl = &netlink.Handle{} // the zero Handle opens a socket per request
	}
	return &LinkStates{nl: nl}
}

// Down returns those of names that cannot carry traffic here: absent,
// administratively down, or operationally down (no carrier). One that
// cannot be read counts as down too, and the error says why.
func (s *LinkStates) Down(names []string) ([]string, error) {
	var down []string
	var errs []error
	for _, name := range names {
		l, err := s.nl.LinkByName(name)
		if err != nil {
			down = append(down, name)
			if _, absent := errors.AsType[netlink.LinkNotFoundError](err); !absent {
				errs = append(errs, fmt.Errorf("reading interface %s: %w", name, err))
			}
			continue
		}
		// Unknown is what drivers without carrier reporting say (lo,
		// dummy, some tunnels); every other state but up carries nothing.
		op := l.Attrs().OperState
		if l.Attrs().Flags&net.FlagUp == 0 || (op != netlink.OperUp && op != netlink.OperUnknown) {
			down = append(down, name)
		}
	}
	return down, errors.Join(errs...)
}

// Subscribe calls changed with the name of every link the kernel reports
// a change of, until ctx ends, so that an interface going down is noticed
// at once rather than at the next periodic check. It returns once
// subscribed. When the subscription breaks (the kernel drops messages
// when its buffer overflows, under heavy Pod churn), failed is told, and
// it subscribes again a second later; the periodic check covers the gap.
func (s *LinkStates) Subscribe(ctx context.Context, changed func(name string), failed func(error)) error {
	updates, done, errc, err := subscribeLinks()
	if err != nil {
		return err
	}
	go func() {
		for {
			err := follow(ctx, updates, done, errc, changed)
			if ctx.Err() != nil {
				return
			}
			failed(err)
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				if updates, done, errc, err = subscribeLinks(); err == nil {
					break
				}
				failed(err)
			}
		}
	}()
	return nil
}

func subscribeLinks() (chan netlink.LinkUpdate, chan struct{}, chan error, error) {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	errc := make(chan error, 1)
	report := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	if err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{ErrorCallback: report}); err != nil {
		close(done)
		return nil, nil, nil, fmt.Errorf("subscribing to link changes: %w", err)
	}
	return updates, done, errc, nil
}

// follow passes link changes on until ctx ends or the subscription
// breaks, and says why it broke.
func follow(ctx context.Context, updates chan netlink.LinkUpdate, done chan struct{}, errc chan error, changed func(string)) error {
	// Closing done closes the socket, and netlink then closes updates;
	// draining lets its reader finish a pending send.
	defer func() {
		close(done)
		for range updates {
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u, ok := <-updates:
			if !ok {
				select {
				case err := <-errc:
					return fmt.Errorf("link change subscription ended: %w", err)
				default:
					return errors.New("link change subscription ended")
				}
			}
			if u.Link != nil {
				changed(u.Link.Attrs().Name)
			}
		}
	}
}
