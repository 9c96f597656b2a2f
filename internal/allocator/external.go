package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// externalPrefix keys the records of spec.externalIPs apart from a
// Service's load-balancer assignment: a LoadBalancer Service can have both.
const externalPrefix = "externalIP:"

func externalKey(svcKey string, a netip.Addr) string {
	return externalPrefix + svcKey + "#" + a.String()
}

// UseExternalIPs records the spec.externalIPs of Service svcKey, replacing
// what was recorded for it before. An address is accepted when it lies in
// a ready pool that allows externalIPs and no load-balancer assignment
// holds it; accepted addresses are never handed to a load balancer and
// count against their pool. The error joins one error per refused address.
// Addresses already accepted stay accepted even if a pool changed since:
// like load-balancer addresses, they do not move.
func (a *Allocator) UseExternalIPs(svcKey string, addrs []netip.Addr) (accepted []netip.Addr, err error) {
	prev := a.ExternalIPs(svcKey)
	var errs []error
	for _, ad := range prev {
		if !slices.Contains(addrs, ad) {
			a.Release(externalKey(svcKey, ad))
		}
	}
	for _, ad := range addrs {
		key := externalKey(svcKey, ad)
		if _, ok := a.services[key]; ok {
			accepted = append(accepted, ad)
			continue
		}
		p := a.readyPoolFor(ad)
		switch {
		case p == nil:
			errs = append(errs, fmt.Errorf("%w: externalIP %s lies in no ready IPPool with externalIPs: true", ErrNotInPool, ad))
			continue
		case !p.cfg.ExternalIPs:
			errs = append(errs, fmt.Errorf("%w: externalIP %s lies in IPPool %q, which does not set externalIPs: true", ErrPoolNotAllowed, ad, p.cfg.Name))
			continue
		}
		rec := &Service{Key: key, ExternalIP: true}
		if st, ok := a.used[ad]; ok {
			if err := compatible(rec, ad, st); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		a.record(rec, Assignment{Addrs: []netip.Addr{ad}, Pool: p.cfg.Name})
		accepted = append(accepted, ad)
	}
	slices.SortFunc(accepted, netip.Addr.Compare)
	if len(accepted) == 0 {
		delete(a.external, svcKey)
	} else {
		a.external[svcKey] = accepted
	}
	return slices.Clone(accepted), errors.Join(errs...)
}

// ExternalIPs returns the accepted externalIPs of Service svcKey, sorted.
func (a *Allocator) ExternalIPs(svcKey string) []netip.Addr {
	return slices.Clone(a.external[svcKey])
}

// ReleaseExternalIPs forgets every externalIP of Service svcKey.
func (a *Allocator) ReleaseExternalIPs(svcKey string) {
	for _, ad := range a.external[svcKey] {
		a.Release(externalKey(svcKey, ad))
	}
	delete(a.external, svcKey)
}
