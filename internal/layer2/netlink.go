package layer2

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

// watch subscribes to link, address and route changes, installs a fresh
// snapshot after each batch of changes, and returns when ctx ends or a
// subscription fails. started is called once the first snapshot is in.
func (a *Announcer) watch(ctx context.Context, started func()) error {
	wctx, cancel := context.WithCancel(ctx)
	linkCh := make(chan netlink.LinkUpdate, 64)
	addrCh := make(chan netlink.AddrUpdate, 64)
	routeCh := make(chan netlink.RouteUpdate, 64)
	var subscribed []func()
	defer func() {
		cancel()
		// A subscription goroutine closes its channel once its socket is
		// closed; drain so that none blocks on a send and leaks.
		for _, d := range subscribed {
			d()
		}
	}()
	errCh := make(chan error, 1)
	onErr := func(err error) {
		select {
		case errCh <- err:
		default:
		}
	}
	done := wctx.Done()
	if err := netlink.LinkSubscribeWithOptions(linkCh, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("subscribing to links: %w", err)
	}
	subscribed = append(subscribed, func() {
		for range linkCh {
		}
	})
	if err := netlink.AddrSubscribeWithOptions(addrCh, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("subscribing to addresses: %w", err)
	}
	subscribed = append(subscribed, func() {
		for range addrCh {
		}
	})
	if err := netlink.RouteSubscribeWithOptions(routeCh, done, netlink.RouteSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("subscribing to routes: %w", err)
	}
	subscribed = append(subscribed, func() {
		for range routeCh {
		}
	})

	// Subscribed first, listed second: no change can fall in between.
	st, err := readState()
	if err != nil {
		return err
	}
	a.applyState(st)
	started()

	// A retry timer runs only while some responder failed to open: nothing
	// ticks on a node where nothing changes.
	var retryC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errCh:
			return err
		case <-a.retryKick:
			if retryC == nil {
				retryC = a.clk.After(retryInterval)
			}
			continue
		case <-retryC:
			retryC = nil
			a.retry() // kicks again if still failing
			continue
		case _, ok := <-linkCh:
			if !ok {
				return errors.New("link subscription closed")
			}
		case _, ok := <-addrCh:
			if !ok {
				return errors.New("address subscription closed")
			}
		case _, ok := <-routeCh:
			if !ok {
				return errors.New("route subscription closed")
			}
		}
		// Coalesce a burst of changes (a link going down removes its
		// addresses and routes too) into one snapshot.
		if !drain(linkCh, addrCh, routeCh) {
			return errors.New("netlink subscription closed")
		}
		st, err := readState()
		if err != nil {
			return err
		}
		a.applyState(st)
	}
}

// drain empties the channels without blocking; false if one is closed.
func drain(linkCh chan netlink.LinkUpdate, addrCh chan netlink.AddrUpdate, routeCh chan netlink.RouteUpdate) bool {
	for {
		select {
		case _, ok := <-linkCh:
			if !ok {
				return false
			}
		case _, ok := <-addrCh:
			if !ok {
				return false
			}
		case _, ok := <-routeCh:
			if !ok {
				return false
			}
		default:
			return true
		}
	}
}

// readState lists links, addresses and default routes. A dump interrupted
// by a concurrent change is retried.
func readState() (*netState, error) {
	var err error
	for range 5 {
		var st *netState
		st, err = readStateOnce()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return st, err
		}
	}
	return nil, err
}

func readStateOnce() (*netState, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	st := &netState{}
	byIndex := map[int]int{}
	for _, l := range links {
		at := l.Attrs()
		up := at.Flags&net.FlagUp != 0 &&
			(at.OperState == netlink.OperUp || at.OperState == netlink.OperUnknown)
		byIndex[at.Index] = len(st.Links)
		st.Links = append(st.Links, link{
			Index:    at.Index,
			Name:     at.Name,
			MAC:      at.HardwareAddr.String(),
			Kind:     l.Type(),
			Up:       up,
			Loopback: at.Flags&net.FlagLoopback != 0,
			Master:   at.MasterIndex,
		})
	}
	for _, ad := range addrs {
		i, ok := byIndex[ad.LinkIndex]
		if !ok || ad.IPNet == nil || ad.Flags&unix.IFA_F_DADFAILED != 0 {
			continue
		}
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok {
			continue
		}
		ones, _ := ad.Mask.Size()
		st.Links[i].Prefixes = append(st.Links[i].Prefixes, netip.PrefixFrom(ip.Unmap(), ones))
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, fmt.Errorf("listing routes: %w", err)
		}
		for _, r := range routes {
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					continue
				}
			}
			if r.Type != unix.RTN_UNICAST && r.Type != 0 {
				continue
			}
			add := func(idx int) {
				if idx > 0 {
					st.Routes = append(st.Routes, defaultRoute{V6: fam == netlink.FAMILY_V6, LinkIndex: idx, Priority: r.Priority})
				}
			}
			add(r.LinkIndex)
			for _, nh := range r.MultiPath {
				add(nh.LinkIndex)
			}
		}
	}
	return st, nil
}
