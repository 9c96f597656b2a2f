package localaddr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link is where the addresses go. Loopback keeps them off the wire: the
// announcer decides who answers ARP and NDP, not the address's interface.
const Link = "lo"

// Addrs adds and removes a fixed set of host addresses (/32, /128) on
// Link.
type Addrs struct {
	Addrs []netip.Addr
}

// Add makes every address local; adding one that is already there is not
// an error.
func (a Addrs) Add() error {
	link, err := netlink.LinkByName(Link)
	if err != nil {
		return fmt.Errorf("finding %s: %w", Link, err)
	}
	for _, ip := range a.Addrs {
		if err := netlink.AddrReplace(link, hostAddr(ip)); err != nil {
			return fmt.Errorf("adding %s to %s: %w", ip, Link, err)
		}
	}
	return nil
}

// Remove takes every address off again; one that is not there is not an
// error, so Remove also clears what a crashed run left.
func (a Addrs) Remove() error {
	link, err := netlink.LinkByName(Link)
	if err != nil {
		return fmt.Errorf("finding %s: %w", Link, err)
	}
	var errs []error
	for _, ip := range a.Addrs {
		if err := netlink.AddrDel(link, hostAddr(ip)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("removing %s from %s: %w", ip, Link, err))
		}
	}
	return errors.Join(errs...)
}

// Has reports whether ip is on Link.
func (a Addrs) Has(ip netip.Addr) (bool, error) {
	link, err := netlink.LinkByName(Link)
	if err != nil {
		return false, fmt.Errorf("finding %s: %w", Link, err)
	}
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	list, err := netlink.AddrList(link, family)
	if err != nil {
		return false, err
	}
	for _, l := range list {
		if got, ok := netip.AddrFromSlice(l.IP); ok && got.Unmap() == ip {
			return true, nil
		}
	}
	return false, nil
}

func hostAddr(ip netip.Addr) *netlink.Addr {
	bits := ip.BitLen()
	return &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(bits, bits)}}
}
