package ctl

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/k8s"
)

// MetalLB reads its Service annotations under two prefixes: metallb.io/
// since v0.14.9, which it prefers, and metallb.universe.tf/, the only one
// earlier releases know (still read, deprecated).
const (
	mlbPrefix    = "metallb.io/"
	mlbOldPrefix = "metallb.universe.tf/"
	mlbSince     = "v0.14.9"
)

// The Service annotations MetalLB defines, without prefix.
const (
	mlbAddressPool   = "address-pool"
	mlbIPs           = "loadBalancerIPs"
	mlbShare         = "allow-shared-ip"
	mlbAllocatedFrom = "ip-allocated-from-pool" // MetalLB's output; herald writes herald.dev/pool-allocated itself
)

var mlbServiceAnnotations = []string{mlbAddressPool, mlbShare, mlbAllocatedFrom, mlbIPs}

// serviceUpdate is the herald annotations one Service lacks. It is printed
// as a kubectl annotate command, never as an object: the output is meant
// for kubectl apply, and applying a Service that holds only a name and
// annotations removes, from a Service last applied with kubectl apply,
// every field it leaves out (its ports and selector among them).
type serviceUpdate struct {
	Namespace, Name string
	Annotations     map[string]string
	// From names the MetalLB annotation each herald one comes from, in
	// the order of their sorted keys.
	From []string
}

func (u serviceUpdate) command() string {
	return annotateCommand(u.Namespace, u.Name, u.Annotations)
}

func svcName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

func svcRef(svc *corev1.Service) string { return "Service " + svcName(svc.Namespace, svc.Name) }

// metallbSuffix returns the name of a MetalLB annotation without its
// prefix, or false for any other annotation.
func metallbSuffix(key string) (string, bool) {
	if s, ok := strings.CutPrefix(key, mlbPrefix); ok {
		return s, true
	}
	return strings.CutPrefix(key, mlbOldPrefix)
}

func hasMetalLBAnnotation(ann map[string]string) bool {
	for k := range ann {
		if _, ok := metallbSuffix(k); ok {
			return true
		}
	}
	return false
}

// mlbValue is one MetalLB annotation as MetalLB resolves it: the
// metallb.io/ key when present (even with an empty value), else the
// metallb.universe.tf/ one; key is "" when neither is.
type mlbValue struct {
	key, value string
	// other is the metallb.universe.tf/ value that the metallb.io/ one
	// overrides, when the two differ.
	other    string
	conflict bool
}

func metallbValue(ann map[string]string, suffix string) mlbValue {
	nv, nok := ann[mlbPrefix+suffix]
	ov, ook := ann[mlbOldPrefix+suffix]
	switch {
	case nok:
		return mlbValue{key: mlbPrefix + suffix, value: nv, other: ov, conflict: ook && ov != nv}
	case ook:
		return mlbValue{key: mlbOldPrefix + suffix, value: ov}
	}
	return mlbValue{}
}

// services translates the MetalLB annotations of every Service in the
// input into herald's, in namespace/name order. Services without MetalLB
// annotations are skipped without a word.
func (c *converter) services() {
	slices.SortStableFunc(c.in.services, func(a, b corev1.Service) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	poolNames := map[string]bool{}
	for _, p := range c.in.pools {
		poolNames[p.Metadata.Name] = true
	}
	var sharing []*corev1.Service
	for i := range c.in.services {
		svc := &c.in.services[i]
		if !hasMetalLBAnnotation(svc.Annotations) {
			continue
		}
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			c.notLoadBalancer(svc)
			continue
		}
		if u, ok := c.service(svc, poolNames); ok {
			c.out.Services = append(c.out.Services, u)
		}
		if metallbValue(svc.Annotations, mlbShare).value != "" {
			sharing = append(sharing, svc)
		}
	}
	c.checkSharing(sharing)
}

func (c *converter) notLoadBalancer(svc *corev1.Service) {
	typ := svc.Spec.Type
	if typ == "" {
		typ = corev1.ServiceTypeClusterIP
	}
	var keys []string
	for k := range svc.Annotations {
		if _, ok := metallbSuffix(k); ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	c.diag("%s: type %s, not LoadBalancer: MetalLB ignores its annotations (%s) and herald gives addresses only to LoadBalancer Services: nothing to carry over", svcRef(svc), typ, strings.Join(keys, ", "))
}

// service works out the herald annotations one LoadBalancer Service needs
// and reports what does not carry over. ok is false when the Service needs
// no change.
func (c *converter) service(svc *corev1.Service, poolNames map[string]bool) (serviceUpdate, bool) {
	ref := svcRef(svc)
	c.unknownAnnotations(svc)
	if class := svc.Spec.LoadBalancerClass; class != nil && *class != defaultClass {
		c.diag("%s spec.loadBalancerClass: %q: herald-controller serves only Services without a class or with its --load-balancer-class (default %s), and a Service's class cannot be changed: start herald-controller with --load-balancer-class %s to serve this Service", ref, *class, defaultClass, *class)
	}

	want := map[string]string{}
	from := map[string]string{} // herald annotation -> the MetalLB one it comes from
	translate := func(suffix, heraldKey string) (mlbValue, bool) {
		v := metallbValue(svc.Annotations, suffix)
		if v.conflict {
			result := fmt.Sprintf("%s %q", heraldKey, v.value)
			if v.value == "" {
				result = heraldKey + " not set"
			}
			c.diag("%s: %s %q and %s %q differ; MetalLB %s and later read %s first, earlier releases only %s: %s (use %q if your MetalLB is older than %s)", ref, v.key, v.value, mlbOldPrefix+suffix, v.other, mlbSince, mlbPrefix, mlbOldPrefix, result, v.other, mlbSince)
		}
		if v.value == "" { // MetalLB reads an empty value as no annotation
			return v, false
		}
		from[heraldKey] = v.key
		return v, true
	}

	pool, hasPool := translate(mlbAddressPool, k8s.AnnotationPool)
	if hasPool {
		want[k8s.AnnotationPool] = pool.value
		if !poolNames[pool.value] {
			c.diag("%s %s: IPAddressPool %q is not in the input: %s %q set anyway; herald-controller reports PoolNotFound for this Service until an IPPool named %s exists", ref, pool.key, pool.value, k8s.AnnotationPool, pool.value, pool.value)
		}
	}
	if ips, ok := translate(mlbIPs, k8s.AnnotationIPs); ok {
		want[k8s.AnnotationIPs] = ips.value
		if _, migrated := svc.Annotations[k8s.AnnotationIPs]; migrated {
			// Only compared with the Service's own herald.dev/ips below.
			if addrs, err := allocator.ParseAddressList(ips.value, 1); err == nil {
				want[k8s.AnnotationIPs] = joinAddrs(addrs)
			}
		} else if addrs, ok := c.addresses(svc, ips); ok {
			want[k8s.AnnotationIPs] = joinAddrs(addrs)
			c.checkRequested(svc, ips, addrs, pool, hasPool && poolNames[pool.value])
		}
	}
	if share, ok := translate(mlbShare, k8s.AnnotationShare); ok {
		want[k8s.AnnotationShare] = share.value
	}

	// Only what the Service lacks: a herald annotation it already has is
	// kept, even where it disagrees.
	for _, k := range slices.Sorted(maps.Keys(want)) {
		have, ok := svc.Annotations[k]
		switch {
		case !ok:
		case have == want[k]:
			delete(want, k)
		default:
			c.diag("%s: already has %s %q, where %s gives %q: left as is", ref, k, have, from[k], want[k])
			delete(want, k)
		}
	}
	if len(want) == 0 {
		c.diag("%s: no herald annotation to add: it has those its MetalLB annotations give, or they give none", ref)
		return serviceUpdate{}, false
	}
	u := serviceUpdate{Namespace: svc.Namespace, Name: svc.Name, Annotations: want}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		u.From = append(u.From, from[k])
	}
	return u, true
}

// unknownAnnotations reports the metallb annotations that MetalLB does not
// define for Services (or that heraldctl does not know of).
func (c *converter) unknownAnnotations(svc *corev1.Service) {
	for _, k := range slices.Sorted(maps.Keys(svc.Annotations)) {
		suffix, ok := metallbSuffix(k)
		if !ok || slices.Contains(mlbServiceAnnotations, suffix) {
			continue
		}
		why := fmt.Sprintf("not a Service annotation of MetalLB that heraldctl knows (%s; a newer MetalLB?)", strings.Join(mlbServiceAnnotations, ", "))
		for _, known := range mlbServiceAnnotations {
			if strings.EqualFold(suffix, known) {
				why = fmt.Sprintf("MetalLB ignores it (annotation names are case-sensitive; did you mean %s?)", strings.TrimSuffix(k, suffix)+known)
			}
		}
		c.diag("%s annotation %s: %s: not carried over", svcRef(svc), k, why)
	}
}

// addresses checks a loadBalancerIPs value against herald's rule for
// herald.dev/ips and MetalLB's own, and returns the addresses when herald
// accepts them.
func (c *converter) addresses(svc *corev1.Service, ips mlbValue) ([]netip.Addr, bool) {
	ref := svcRef(svc)
	mlbProblem := metallbIPsProblem(ips.value)
	addrs, err := allocator.ParseAddressList(ips.value, 1)
	if err != nil {
		why := strings.TrimPrefix(err.Error(), allocator.ErrInvalidRequest.Error()+": ")
		verdict := "MetalLB refuses it too"
		if mlbProblem == "" {
			verdict = "MetalLB accepted it"
		}
		c.diag("%s %s: %s; %s: carried over unchanged as %s, for which herald-controller reports InvalidRequest until it is fixed", ref, ips.key, why, verdict, k8s.AnnotationIPs)
		return nil, false
	}
	if mlbProblem != "" {
		c.diag("%s %s: %q: MetalLB refuses it (%s), herald ignores empty entries: %s %q, which herald will assign where MetalLB did not", ref, ips.key, ips.value, mlbProblem, k8s.AnnotationIPs, joinAddrs(addrs))
	}
	return addrs, true
}

// metallbIPsProblem says why MetalLB refuses a loadBalancerIPs value, or
// "" if it accepts it: every comma-separated entry must be an address (an
// IPv4-mapped IPv6 address counts as IPv4), and there are at most two, of
// different families.
func metallbIPsProblem(s string) string {
	var fams []allocator.Family
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return "an empty entry"
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return fmt.Sprintf("%q is not an IP address", f)
		}
		fams = append(fams, allocator.FamilyOf(a.Unmap()))
	}
	switch {
	case len(fams) > 2:
		return "more than two addresses"
	case len(fams) == 2 && fams[0] == fams[1]:
		return fmt.Sprintf("two %s addresses", fams[0])
	}
	return ""
}

// checkRequested reports requested addresses that herald-controller will
// refuse for the pools of the input, and a spec.loadBalancerIP beside
// them, which MetalLB refuses and herald accepts when it is one of them.
func (c *converter) checkRequested(svc *corev1.Service, ips mlbValue, addrs []netip.Addr, pool mlbValue, poolKnown bool) {
	ref := svcRef(svc)
	if lb := svc.Spec.LoadBalancerIP; lb != "" {
		a, err := netip.ParseAddr(lb)
		if err == nil && slices.Contains(addrs, a) {
			c.diag("%s: spec.loadBalancerIP and %s are both set, which MetalLB refuses; herald accepts both when spec.loadBalancerIP is one of %s, as %s is, so herald will assign %s", ref, ips.key, k8s.AnnotationIPs, a, joinAddrs(addrs))
		} else {
			c.diag("%s: spec.loadBalancerIP and %s are both set, which MetalLB refuses; herald-controller refuses them too (InvalidRequest), spec.loadBalancerIP %q not being one of %s %q", ref, ips.key, lb, k8s.AnnotationIPs, joinAddrs(addrs))
		}
	}
	for _, a := range addrs {
		holders := c.poolsHolding(a)
		switch {
		case pool.value != "" && poolKnown && !slices.Contains(holders, pool.value):
			c.diag("%s %s: %s is not in IPPool %s, which %s names; MetalLB refuses this too, and herald-controller reports NotInPool until they agree", ref, ips.key, a, pool.value, pool.key)
		case pool.value == "" && len(holders) == 0:
			c.diag("%s %s: %s is in no IPAddressPool of the input: herald-controller reports NotInPool for this Service until an IPPool holds it", ref, ips.key, a)
		}
	}
}

// poolsHolding returns the converted IPPools whose addresses include a.
func (c *converter) poolsHolding(a netip.Addr) []string {
	var out []string
	for _, p := range c.out.Pools {
		for _, s := range p.Spec.Addresses {
			if r, err := allocator.ParseRange(s); err == nil && r.Contains(a) {
				out = append(out, p.Name)
				break
			}
		}
	}
	return out
}

// checkSharing reports the one way herald's sharing is stricter than
// MetalLB's. Both need the same key and ports that do not collide, and
// both compare the selectors of externalTrafficPolicy Local Services;
// but MetalLB compares a selector-less Local Service as if it were a
// Cluster one, so it shares an address with Cluster Services and other
// selector-less Local ones. herald never shares with a Local Service
// whose endpoints it cannot know.
func (c *converter) checkSharing(svcs []*corev1.Service) {
	groups := map[string][]*corev1.Service{}
	for _, s := range svcs {
		k := metallbValue(s.Annotations, mlbShare).value
		groups[k] = append(groups[k], s)
	}
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		var open []*corev1.Service // MetalLB's backend key is empty for these
		selectorless := false
		for _, s := range groups[key] {
			local := s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
			if local && len(s.Spec.Selector) > 0 {
				continue
			}
			open = append(open, s)
			selectorless = selectorless || local
		}
		if len(open) < 2 || !selectorless {
			continue
		}
		c.diag("%s allow-shared-ip %q: MetalLB lets an externalTrafficPolicy Local Service without a selector share an address with Cluster Services and with other such Services; herald does not, as it cannot tell which endpoints a Service without a selector reaches: under herald they get separate addresses, and herald-controller reports SharingIncompatible when one requests an address another holds", refs(open, svcRef), key)
	}
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// annotateCommand is the kubectl command that adds ann to a Service and
// changes nothing else (without --overwrite it refuses to replace a value).
func annotateCommand(namespace, name string, ann map[string]string) string {
	args := []string{"kubectl", "annotate"}
	if namespace != "" {
		args = append(args, "--namespace", shellQuote(namespace))
	}
	args = append(args, "service", shellQuote(name))
	for _, k := range slices.Sorted(maps.Keys(ann)) {
		args = append(args, shellQuote(k+"="+ann[k]))
	}
	return strings.Join(args, " ")
}

// shellQuote quotes s for a POSIX shell unless it is made of characters
// that need none.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, needsQuote) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func needsQuote(r rune) bool {
	plain := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r)
	return !plain
}
