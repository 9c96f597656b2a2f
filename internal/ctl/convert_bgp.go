package ctl

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/bgpplan"
)

// The BGP half of import-metallb: communities, BGPAdvertisements and
// BGPPeers.

var plainCommunity = regexp.MustCompile(`^[0-9]{1,5}:[0-9]{1,5}$`)
var largeCommunity = regexp.MustCompile(`^[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$`)

// parseCommunity reads a community value as MetalLB does: "ASN:VALUE"
// with 16-bit numbers, or "large:GLOBAL:LOCAL1:LOCAL2" with 32-bit ones.
// It returns the herald value, whether it is large, and why it is no
// community ("" when it is one).
func parseCommunity(v string) (string, bool, string) {
	fits := func(s string, bits int) bool {
		for _, n := range strings.Split(s, ":") {
			if _, err := strconv.ParseUint(n, 10, bits); err != nil {
				return false
			}
		}
		return true
	}
	if rest, ok := strings.CutPrefix(v, "large:"); ok {
		if !largeCommunity.MatchString(rest) || !fits(rest, 32) {
			return "", true, "not large:GLOBAL:LOCAL1:LOCAL2 with numbers in 0..4294967295"
		}
		return rest, true, ""
	}
	if !plainCommunity.MatchString(v) {
		return "", false, "not ASN:VALUE"
	}
	if !fits(v, 16) {
		return "", false, "ASN:VALUE with a number above 65535"
	}
	return v, false, ""
}

// checkCommunities refuses Community objects MetalLB would refuse: an
// alias defined twice, or a value that is no community.
func (c *converter) checkCommunities() {
	defined := map[string]string{}
	for i := range c.in.communities {
		cm := &c.in.communities[i]
		for j, e := range cm.Spec.Communities {
			field := fmt.Sprintf("spec.communities[%d]", j)
			if _, _, why := parseCommunity(e.Value); why != "" {
				c.r.refuse(cm.ref(), field, "alias %q: value %q is %s (MetalLB refuses it too)", e.Name, e.Value, why)
			}
			key := cm.Metadata.Namespace + "/" + e.Name
			if prev, dup := defined[key]; dup {
				c.r.refuse(cm.ref(), field, "alias %q is also defined in %s (MetalLB refuses it too)", e.Name, prev)
			}
			defined[key] = cm.ref()
		}
	}
}

// resolveCommunity finds raw among the Community aliases of namespace ns:
// the value, and the Community that defines it ("" when raw is no alias).
func (c *converter) resolveCommunity(ns, raw string) (string, string) {
	for i := range c.in.communities {
		cm := &c.in.communities[i]
		if cm.Metadata.Namespace != ns {
			continue
		}
		for _, e := range cm.Spec.Communities {
			if e.Name == raw {
				return e.Value, cm.ref()
			}
		}
	}
	return raw, ""
}

// communities resolves an advertisement's communities: aliases (from a
// Community object in the advertisement's namespace), "large:" values,
// and plain ASN:VALUE. ok is false when one is neither.
func (c *converter) communities(a *mlbBGPAdv) (plain, large []string, ok bool) {
	ok = true
	for _, raw := range a.Spec.Communities {
		v, from := c.resolveCommunity(a.Metadata.Namespace, raw)
		if from != "" {
			if c.r.refused[from] {
				c.r.refuse(a.ref(), "spec.communities", "alias %q comes from %s, which is refused", raw, from)
				ok = false
				continue
			}
			if !slices.Contains(c.communitiesUsed[a.ref()], from) {
				c.communitiesUsed[a.ref()] = append(c.communitiesUsed[a.ref()], from)
			}
		}
		val, isLarge, why := parseCommunity(v)
		switch {
		case why != "" && from == "":
			c.r.refuse(a.ref(), "spec.communities", "%q is %s, and no Community in %s defines it as an alias (MetalLB refuses it too)", raw, why, a.Metadata.Namespace)
			ok = false
		case why != "":
			ok = false // reported with the Community
		case isLarge:
			large = append(large, val)
		default:
			plain = append(plain, val)
		}
	}
	slices.Sort(plain)
	slices.Sort(large)
	return slices.Compact(plain), slices.Compact(large), ok
}

func (c *converter) checkBGPAdv(a *mlbBGPAdv) {
	ref := a.ref()
	c.checkPoolSelection(&a.mlbObject, &a.Spec.mlbSelection)
	c.checkSelectors(ref, "spec.nodeSelectors", a.Spec.NodeSelectors)
	if len(a.Spec.ServiceSelectors) > 0 {
		c.r.refuse(ref, "spec.serviceSelectors", "herald advertises every Service of a pool alike; it cannot advertise only some Services' addresses, and advertising all would be wider")
	}
	if l := a.Spec.AggregationLength; l != nil && (*l < 0 || *l > 32) {
		c.r.refuse(ref, "spec.aggregationLength", "%d is not a prefix length of 0..32 (MetalLB refuses it too)", *l)
	}
	if l := a.Spec.AggregationLengthV6; l != nil && (*l < 0 || *l > 128) {
		c.r.refuse(ref, "spec.aggregationLengthV6", "%d is not a prefix length of 0..128 (MetalLB refuses it too)", *l)
	}
	plain, large, _ := c.communities(a)
	c.advCommunities[ref] = [2][]string{plain, large}
	peers := map[string]bool{}
	for _, p := range c.in.peers {
		peers[p.Metadata.Name] = true
	}
	for _, n := range a.Spec.Peers {
		if !peers[n] {
			c.r.note("%s spec.peers: BGPPeer %q is not in the input: kept in the peers of its herald advertisement, so the pool is advertised to it once a BGPPeer of that name exists, as with MetalLB", ref, n)
		}
	}
}

// bgpAttrs are what one MetalLB BGPAdvertisement says of its routes: their
// prefix lengths, their attributes and the peers they go to.
type bgpAttrs struct {
	agg, agg6 int32
	localPref uint32
	plain     []string
	large     []string
	aggSet    bool
	agg6Set   bool
	peers     []string // sorted; nil: every peer
}

func (c *converter) attrs(a *mlbBGPAdv) bgpAttrs {
	x := bgpAttrs{agg: 32, agg6: 128, localPref: a.Spec.LocalPref}
	if a.Spec.AggregationLength != nil {
		x.agg, x.aggSet = *a.Spec.AggregationLength, true
	}
	if a.Spec.AggregationLengthV6 != nil {
		x.agg6, x.agg6Set = *a.Spec.AggregationLengthV6, true
	}
	comms := c.advCommunities[a.ref()]
	x.plain, x.large = comms[0], comms[1]
	if len(a.Spec.Peers) > 0 {
		x.peers = sortedCopy(a.Spec.Peers)
	}
	return x
}

// advertisement is x as one herald advertisement from the nodes sel
// selects (nil: every node).
func (x bgpAttrs) advertisement(sel *metav1.LabelSelector) heraldv1.BGPAdvertisement {
	out := heraldv1.BGPAdvertisement{Peers: x.peers, NodeSelector: sel}
	if x.aggSet {
		out.AggregationLength = ptr.To(x.agg)
	}
	if x.agg6Set {
		out.AggregationLengthV6 = ptr.To(x.agg6)
	}
	if x.localPref != 0 {
		out.LocalPref = ptr.To(x.localPref)
	}
	out.Communities, out.LargeCommunities = x.plain, x.large
	return out
}

// maxPoolAdvertisements is how many advertisements one IPPool holds:
// announce.bgp's own fields and 16 in announce.bgp.advertisements.
const maxPoolAdvertisements = 17

// bgpUnit is one herald advertisement of a pool: a MetalLB
// BGPAdvertisement, or one of its nodeSelectors when they do not fold into
// one selector.
type bgpUnit struct {
	from *mlbBGPAdv
	name string // the name it asks for in announce.bgp.advertisements
	ad   heraldv1.BGPAdvertisement
}

// bgpAnnounce converts the BGPAdvertisements of p, one herald advertisement
// each: the first (by namespace/name) is announce.bgp's own fields, each
// further one an entry of announce.bgp.advertisements named after it. A
// peer then gets an address from a node when one of them that selects both
// covers it, with the union of their communities, as from MetalLB. One
// whose nodeSelectors do not fold into one selector becomes one herald
// advertisement per selector, with the same attributes: under the union
// the same nodes announce the same routes. Where the two differ, two local
// preferences for one route (MetalLB refuses the configuration, herald
// would take the highest), the pool is refused. It returns the
// advertisements the result stands for (fewer with --allow-lossy) and
// whether the pool may still be converted.
func (c *converter) bgpAnnounce(p *mlbPool, spec *heraldv1.IPPoolSpec, advs []*mlbBGPAdv) (*heraldv1.BGPAnnounce, []*mlbBGPAdv, bool) {
	ref, pool := p.ref(), p.Metadata.Name
	all := make([]bgpAttrs, len(advs))
	for i, a := range advs {
		all[i] = c.attrs(a)
	}
	if kept, clashes := localPrefClashes(spec, advs, all); len(clashes) > 0 {
		var dropped []string
		for i, a := range advs {
			if !slices.Contains(kept, i) {
				dropped = append(dropped, a.ref())
			}
		}
		if !c.r.narrow(ref, "", fmt.Sprintf("%s: MetalLB refuses a configuration in which BGPAdvertisements with different localPref send a pool's prefix to a peer from a node they both select (and its speaker announces no Service whose advertisements clash so), while herald's IPPool %s would send that route with the highest of them",
			strings.Join(clashes, "; "), pool),
			strings.Join(dropped, ", ")+" not converted for this pool: routes only it would send are not sent, and those it shares with the advertisements kept lack its communities and local preference") {
			return nil, advs, false
		}
		var ka []*mlbBGPAdv
		var kx []bgpAttrs
		for _, i := range kept {
			ka, kx = append(ka, advs[i]), append(kx, all[i])
		}
		advs, all = ka, kx
	}

	ok := true
	var units []bgpUnit
	for i, a := range advs {
		if !c.checkAggregation(p, spec, a, all[i]) {
			ok = false
		}
		if sel, exact := oneSelector(a.Spec.NodeSelectors); exact {
			units = append(units, bgpUnit{a, a.Metadata.Name, all[i].advertisement(sel)})
			continue
		}
		for j := range a.Spec.NodeSelectors {
			sel := a.Spec.NodeSelectors[j]
			units = append(units, bgpUnit{a, fmt.Sprintf("%s-%d", a.Metadata.Name, j+1), all[i].advertisement(&sel)})
		}
	}
	if len(units) > maxPoolAdvertisements {
		c.r.refuse(ref, "", "its BGPAdvertisements (%s) make %d herald advertisements (one each, and one per nodeSelector of those whose selectors do not fold into one); herald's IPPool %s holds at most %d: announce.bgp's own fields and %d in announce.bgp.advertisements",
			refs(advs, func(a *mlbBGPAdv) string { return a.ref() }), len(units), pool, maxPoolAdvertisements, maxPoolAdvertisements-1)
		return nil, advs, false
	}

	out := &heraldv1.BGPAnnounce{BGPAdvertisement: units[0].ad}
	where := map[*mlbBGPAdv][]string{units[0].from: {"announce.bgp"}}
	used := map[string]bool{}
	for _, u := range units[1:] {
		name := uniqueLabel(u.name, used)
		if name != u.name {
			why := "is taken by another advertisement of the pool"
			if l := dnsLabel(u.name); l != u.name && l == name {
				why = "is not a DNS label of at most 63 characters"
			} else if l != u.name {
				why = fmt.Sprintf("is not a DNS label of at most 63 characters, and %q is taken by another advertisement of the pool", l)
			}
			c.r.note("%s: named %q in announce.bgp.advertisements of IPPool %s, as %q %s", u.from.ref(), name, pool, u.name, why)
		}
		where[u.from] = append(where[u.from], name)
		out.Advertisements = append(out.Advertisements, heraldv1.NamedBGPAdvertisement{Name: name, BGPAdvertisement: u.ad})
	}
	for _, a := range advs {
		if n := len(a.Spec.NodeSelectors); len(where[a]) > 1 {
			c.r.note("%s spec.nodeSelectors: %d selectors (any may match) that no one herald nodeSelector holds: IPPool %s advertises its routes once per selector, with the same attributes (%s)",
				a.ref(), n, pool, strings.Join(where[a], ", "))
		}
	}
	return out, advs, ok
}

// localPrefClashes finds the BGPAdvertisements that give a route another
// local preference than an earlier one that may send the same prefix to
// the same peer from the same node: MetalLB's config validation refuses
// the pair, where herald takes the highest. It returns the indexes of the
// advertisements that clash with no earlier kept one, and the clashes.
func localPrefClashes(spec *heraldv1.IPPoolSpec, advs []*mlbBGPAdv, all []bgpAttrs) ([]int, []string) {
	var v4, v6 bool
	for _, a := range spec.Addresses {
		first, _, _ := strings.Cut(a, "-")
		first, _, _ = strings.Cut(first, "/")
		if ip, err := netip.ParseAddr(first); err == nil {
			v4, v6 = v4 || ip.Is4(), v6 || !ip.Is4()
		}
	}
	pref := func(x bgpAttrs) string {
		if x.localPref == 0 {
			return "no localPref"
		}
		return fmt.Sprintf("localPref %d", x.localPref)
	}
	var kept []int
	var clashes []string
	for j := range advs {
		clash := -1
		for _, i := range kept {
			x, y := all[i], all[j]
			switch {
			case x.localPref == y.localPref:
			case (!v4 || x.agg != y.agg) && (!v6 || x.agg6 != y.agg6): // other prefixes in each family
			case x.peers != nil && y.peers != nil && !slices.ContainsFunc(x.peers, func(p string) bool { return slices.Contains(y.peers, p) }):
			case selectorsDisjoint(advs[i].Spec.NodeSelectors, advs[j].Spec.NodeSelectors):
			default:
				clash = i
			}
			if clash >= 0 {
				break
			}
		}
		if clash < 0 {
			kept = append(kept, j)
			continue
		}
		clashes = append(clashes, fmt.Sprintf("%s (%s) and %s (%s) may send the same prefix to the same peer from the same node",
			advs[clash].ref(), pref(all[clash]), advs[j].ref(), pref(all[j])))
	}
	return kept, clashes
}

// selectorsDisjoint reports whether no node can match one of a's
// selectors and one of b's (MetalLB's lists: any may match; empty: every
// node).
func selectorsDisjoint(a, b []metav1.LabelSelector) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	for i := range a {
		for j := range b {
			if !unsatisfiable(a[i], b[j]) {
				return false
			}
		}
	}
	return true
}

// unsatisfiable reports whether no set of labels matches every one of
// sels: some key must both exist and not, or take a value none of its
// requirements allows. It answers false when unsure.
func unsatisfiable(sels ...metav1.LabelSelector) bool {
	type keyReq struct {
		in     map[string]bool // nil: any value
		notIn  map[string]bool
		exists bool
		absent bool
	}
	reqs := map[string]*keyReq{}
	get := func(k string) *keyReq {
		if reqs[k] == nil {
			reqs[k] = &keyReq{notIn: map[string]bool{}}
		}
		return reqs[k]
	}
	only := func(r *keyReq, vals []string) {
		next := map[string]bool{}
		for _, v := range vals {
			if r.in == nil || r.in[v] {
				next[v] = true
			}
		}
		r.in, r.exists = next, true
	}
	for _, s := range sels {
		for k, v := range s.MatchLabels {
			only(get(k), []string{v})
		}
		for _, e := range s.MatchExpressions {
			r := get(e.Key)
			switch e.Operator {
			case metav1.LabelSelectorOpIn:
				only(r, e.Values)
			case metav1.LabelSelectorOpNotIn:
				for _, v := range e.Values {
					r.notIn[v] = true
				}
			case metav1.LabelSelectorOpExists:
				r.exists = true
			case metav1.LabelSelectorOpDoesNotExist:
				r.absent = true
			default:
				return false
			}
		}
	}
	for _, r := range reqs {
		if r.exists && r.absent {
			return true
		}
		if r.in != nil {
			left := 0
			for v := range r.in {
				if !r.notIn[v] {
					left++
				}
			}
			if left == 0 {
				return true
			}
		}
	}
	return false
}

// dnsLabel makes s a DNS label (RFC 1123) of at most 63 characters, as
// herald's advertisement names are: lower case, other characters than
// letters, digits and '-' replaced by '-'.
func dnsLabel(s string) string {
	b := []byte(strings.ToLower(s))
	for i, ch := range b {
		if (ch < 'a' || ch > 'z') && (ch < '0' || ch > '9') {
			b[i] = '-'
		}
	}
	out := strings.Trim(string(b), "-")
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	if out == "" {
		out = "advertisement"
	}
	return out
}

// uniqueLabel is dnsLabel(want), with a "-N" suffix when that is in used;
// it adds the result to used.
func uniqueLabel(want string, used map[string]bool) string {
	base := dnsLabel(want)
	name := base
	for n := 2; used[name]; n++ {
		suffix := "-" + strconv.Itoa(n)
		b := base
		if len(b)+len(suffix) > 63 {
			b = strings.TrimRight(b[:63-len(suffix)], "-")
		}
		name = b + suffix
	}
	used[name] = true
	return name
}

// checkAggregation refuses an aggregation length shorter than one of the
// pool's CIDRs: the aggregate would cover addresses outside the pool, and
// both MetalLB and herald's API refuse it.
func (c *converter) checkAggregation(p *mlbPool, spec *heraldv1.IPPoolSpec, adv *mlbBGPAdv, x bgpAttrs) bool {
	ok := true
	for _, a := range spec.Addresses {
		pfx, err := netip.ParsePrefix(a)
		if err != nil {
			continue // a range
		}
		l, field := x.agg, "aggregationLength"
		if pfx.Addr().Is6() {
			l, field = x.agg6, "aggregationLengthV6"
		}
		if int(l) < pfx.Bits() {
			c.r.refuse(p.ref(), "spec.addresses", "%s is longer than the %s %d that %s gives it: the aggregate would cover addresses outside the pool (MetalLB refuses it too)", a, field, l, adv.ref())
			ok = false
		}
	}
	return ok
}

// bfdConv is one MetalLB BFDProfile: its herald form, inlined into the
// spec.bfd of each BGPPeer that names it, or ok false when it is refused.
type bfdConv struct {
	ref  string
	ok   bool
	spec heraldv1.BFDProfile
}

// checkBFDProfiles converts the BFDProfiles. MetalLB hands a profile to
// FRR's bfdd field by field, writing none it leaves unset, so FRR's
// defaults apply to those: 300ms intervals, multiplier 3, minimum TTL 254,
// no echo, not passive. herald's defaults are the same, so only the fields
// a profile sets are written. MetalLB's bounds (which it refuses outside
// of) are herald's. echoMode is refused in both modes: echo packets test
// the path through the router's forwarding plane, and a session whose
// echo fails goes down with its routes; herald has no echo function, so
// without it the routes would stay announced where MetalLB's are
// withdrawn, which is not narrower. echoInterval is refused alike:
// MetalLB writes it to FRR whether or not echoMode is set, and FRR
// advertises it to the router (Required Min Echo RX Interval) in every
// single-hop control packet, so it is not ignored.
func (c *converter) checkBFDProfiles() {
	c.bfd, c.bfdUsers = map[string]*bfdConv{}, map[string][]string{}
	for i := range c.in.bfd {
		b := &c.in.bfd[i]
		ref, sp := b.ref(), b.Spec
		key := b.Metadata.Namespace + "/" + b.Metadata.Name
		if prev, dup := c.bfd[key]; dup {
			c.r.refuse(ref, "metadata.name", "also defined as %s (MetalLB refuses it too)", prev.ref)
			prev.ok = false
			continue
		}
		conv := &bfdConv{ref: ref, ok: true}
		c.bfd[key] = conv
		fail := func(field, format string, args ...any) {
			c.r.refuse(ref, field, format, args...)
			conv.ok = false
		}
		bounded := func(field string, v *uint32, lo, hi uint32) bool {
			if v != nil && (*v < lo || *v > hi) {
				fail(field, "%d is not in %d..%d (MetalLB refuses it too)", *v, lo, hi)
				return false
			}
			return v != nil
		}
		if bounded("spec.receiveInterval", sp.ReceiveInterval, 10, 60000) {
			conv.spec.ReceiveInterval = &metav1.Duration{Duration: time.Duration(*sp.ReceiveInterval) * time.Millisecond}
		}
		if bounded("spec.transmitInterval", sp.TransmitInterval, 10, 60000) {
			conv.spec.TransmitInterval = &metav1.Duration{Duration: time.Duration(*sp.TransmitInterval) * time.Millisecond}
		}
		if bounded("spec.detectMultiplier", sp.DetectMultiplier, 2, 255) {
			conv.spec.DetectMultiplier = ptr.To(int32(*sp.DetectMultiplier))
		}
		if bounded("spec.minimumTtl", sp.MinimumTTL, 1, 254) {
			conv.spec.MinimumTTL = ptr.To(int32(*sp.MinimumTTL))
		}
		if sp.PassiveMode != nil {
			conv.spec.PassiveMode = *sp.PassiveMode
		}
		if sp.EchoMode != nil && *sp.EchoMode {
			fail("spec.echoMode", "herald's BFD has no echo function: echo packets test the router's forwarding path, and MetalLB's session goes down, its routes withdrawn, when they stop coming back; without echo herald's routes would stay announced then, which is wider, so there is no narrower form")
		}
		if bounded("spec.echoInterval", sp.EchoInterval, 10, 60000) {
			fail("spec.echoInterval", "%dms: MetalLB's FRR advertises it to the router as the echo interval it accepts, echoMode or not (a router running echo then loops its packets through the node at that pace); herald's BFD accepts no echo packets and advertises 0, so a router relying on echo would detect failures otherwise", *sp.EchoInterval)
		}
	}
}

// bfdFor is the spec.bfd of the converted BGPPeer p, which names a
// BFDProfile: MetalLB looks it up by name among the profiles of its own
// namespace. ok is false when p is refused for it.
func (c *converter) bfdFor(p *mlbPeer) (*heraldv1.BFDProfile, bool) {
	s, ref := p.Spec, p.ref()
	b := c.bfd[p.Metadata.Namespace+"/"+s.BFDProfile]
	switch {
	case b == nil:
		c.r.refuse(ref, "spec.bfdProfile", "%q: no BFDProfile of that name in namespace %s in the input; MetalLB keeps no configuration in which a BGPPeer names a missing profile, and its settings cannot be guessed: add the BFDProfile to the input", s.BFDProfile, p.Metadata.Namespace)
		return nil, false
	case !b.ok:
		c.r.refuse(ref, "spec.bfdProfile", "%q: %s is refused", s.BFDProfile, b.ref)
		return nil, false
	}
	ibgp := s.DynamicASN == "internal" || s.PeerASN != 0 && s.PeerASN == s.MyASN
	if ibgp && s.Interface == "" && !c.r.narrow(ref, "spec.bfdProfile",
		fmt.Sprintf("%q on an iBGP session: MetalLB's FRR runs multihop BFD (RFC 5883) for an iBGP peer on no network the node shares, single-hop otherwise, where herald's BFD on an iBGP session is always single-hop; the importer cannot see the nodes' networks", s.BFDProfile),
		"converted with single-hop BFD: the same where the router shares a network with the node; elsewhere the router's multihop BFD session does not come up, and a failed session is noticed when its hold time expires") {
		return nil, false
	}
	out := b.spec
	return &out, true
}

// bfdNotes says where each converted BFDProfile went: it is no herald
// object of its own.
func (c *converter) bfdNotes() {
	for i := range c.in.bfd {
		ref := c.in.bfd[i].ref()
		if c.r.refused[ref] {
			continue
		}
		users := c.bfdUsers[ref]
		if len(users) == 0 {
			c.r.note("%s: no herald object of its own, and no converted BGPPeer uses it: nothing to convert", ref)
			continue
		}
		c.r.note("%s: no herald object of its own: inlined into spec.bfd of %s (unset fields are FRR's defaults and herald's alike: 300ms intervals, multiplier 3, minimum TTL 254)", ref, strings.Join(users, ", "))
	}
}

// bgpSeconds is how MetalLB hands a BGP timer to its BGP daemon: whole
// seconds, the fraction cut off.
func bgpSeconds(d time.Duration) time.Duration {
	return d.Truncate(time.Second)
}

// timers carries holdTime and keepaliveTime over as MetalLB applies them:
// a missing one derived from the other (hold = 3 × keepalive, keepalive =
// hold / 3), both cut to whole seconds. It reports whether herald can
// hold them.
func (c *converter) timers(p *mlbPeer, out *heraldv1.BGPPeerSpec) bool {
	s, ref := p.Spec, p.ref()
	if s.HoldTime == nil && s.KeepaliveTime == nil {
		return true
	}
	var hold, ka time.Duration
	switch {
	case s.HoldTime != nil && s.KeepaliveTime != nil:
		hold, ka = s.HoldTime.Duration, s.KeepaliveTime.Duration
	case s.HoldTime != nil:
		hold, ka = s.HoldTime.Duration, s.HoldTime.Duration/3
	default:
		hold, ka = 3*s.KeepaliveTime.Duration, s.KeepaliveTime.Duration
	}
	if hold < 0 || ka < 0 {
		c.r.refuse(ref, "spec.holdTime", "negative timers (MetalLB refuses them too)")
		return false
	}
	h, k := bgpSeconds(hold), bgpSeconds(ka)
	for _, t := range []struct {
		field string
		in    *metav1.Duration
	}{{"holdTime", s.HoldTime}, {"keepaliveTime", s.KeepaliveTime}} {
		if t.in != nil && bgpSeconds(t.in.Duration) != t.in.Duration {
			c.r.note("%s spec.%s: %v is not whole seconds; MetalLB cuts it to %v, and so does the conversion", ref, t.field, t.in.Duration, bgpSeconds(t.in.Duration))
		}
	}
	switch {
	case h != 0 && h < 3*time.Second:
		c.r.refuse(ref, "spec.holdTime", "%v: a hold time is 0 or at least 3s (RFC 4271; MetalLB refuses it too)", h)
		return false
	case h > 65535*time.Second:
		c.r.refuse(ref, "spec.holdTime", "%v: above 65535s, the longest hold time BGP can carry (herald's API refuses it)", h)
		return false
	case ka > hold:
		c.r.refuse(ref, "spec.keepaliveTime", "%v is longer than the hold time %v (MetalLB refuses it too)", ka, hold)
		return false
	case k == 0 && h != 0:
		// RFC 4271 sends keepalives only to keep the peer's hold timer
		// from expiring; 0 means none. herald's keepaliveTime is at least
		// 1s, and unset it sends them every third of the hold time, which
		// keeps up a session MetalLB lets expire: not narrower.
		c.r.refuse(ref, "spec.keepaliveTime", "0s with a hold time of %v: no keepalives, so the router drops the session whenever no UPDATE arrives for %v; herald always sends keepalives on a session with a hold time (keepaliveTime 1s..21845s, or unset: a third of the hold time), so no herald BGPPeer means the same", h, h)
		return false
	case k == h && h != 0:
		c.r.refuse(ref, "spec.keepaliveTime", "%v equals the hold time: herald's API wants keepaliveTime shorter than holdTime, and a keepalive sent as the hold timer expires keeps no session up", k)
		return false
	case k > 21845*time.Second:
		c.r.refuse(ref, "spec.keepaliveTime", "%v: above 21845s, a third of the longest hold time (herald's API refuses it)", k)
		return false
	}
	out.HoldTime = &metav1.Duration{Duration: h}
	if k != 0 && s.KeepaliveTime != nil {
		out.KeepaliveTime = &metav1.Duration{Duration: k}
	}
	return true
}

// parseIP accepts an address herald's API takes: no zone.
func parseIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	return a, err == nil && a.Zone() == ""
}

func (c *converter) peer(p *mlbPeer) (heraldv1.BGPPeer, bool) {
	s, ref, name := p.Spec, p.ref(), p.Metadata.Name
	out := heraldv1.BGPPeer{
		TypeMeta:   metav1.TypeMeta{APIVersion: heraldv1.SchemeGroupVersion.String(), Kind: "BGPPeer"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}
	ok := !c.r.refused[ref]
	fail := func(field, format string, args ...any) {
		c.r.refuse(ref, field, format, args...)
		ok = false
	}
	out.Spec.MyASN = s.MyASN
	if s.MyASN == 0 {
		fail("spec.myASN", "missing or 0 (MetalLB refuses it too)")
	}
	out.Spec.PeerASN = s.PeerASN
	switch {
	case s.PeerASN != 0 && s.DynamicASN != "":
		fail("spec.dynamicASN", "set together with peerASN (MetalLB refuses it too)")
	case s.PeerASN != 0:
	case s.DynamicASN == "internal" || s.DynamicASN == "external":
		out.Spec.DynamicASN = heraldv1.DynamicASN(s.DynamicASN)
	case s.DynamicASN == "":
		fail("spec.peerASN", "neither peerASN nor dynamicASN is set (MetalLB refuses it too)")
	default:
		fail("spec.dynamicASN", "%q: neither internal nor external (MetalLB refuses it too)", s.DynamicASN)
	}
	if s.LocalASN != 0 {
		fail("spec.localASN", "%d: herald has no per-session local AS (local-as); the router would see myASN %d instead", s.LocalASN, s.MyASN)
	}
	switch {
	case s.Interface != "" && s.PeerAddress != "":
		fail("spec.interface", "set together with peerAddress (MetalLB refuses it too)")
	case s.Interface != "":
		switch {
		case !bgpplan.ValidInterfaceName(s.Interface):
			fail("spec.interface", "%q is not a Linux interface name (herald's API refuses it)", s.Interface)
		case s.SourceAddress != "":
			fail("spec.sourceAddress", "set together with interface: an unnumbered session runs from the interface's link-local address (herald's API refuses it)")
		case c.r.narrow(ref, "spec.interface", "herald sends only IPv6 routes over an unnumbered session, where MetalLB's FRR sends IPv4 ones too with RFC 5549 next hops",
			"the same session over "+s.Interface+", IPv6 routes only"):
			out.Spec.Interface = s.Interface
		default:
			ok = false
		}
	case s.PeerAddress == "":
		fail("spec.peerAddress", "missing (MetalLB refuses it too)")
	}
	peerAddr, peerOK := parseIP(s.PeerAddress)
	if s.PeerAddress != "" && !peerOK {
		fail("spec.peerAddress", "%q is not an IP address herald's API accepts", s.PeerAddress)
	}
	out.Spec.PeerAddress = s.PeerAddress
	if s.SourceAddress != "" {
		src, srcOK := parseIP(s.SourceAddress)
		switch {
		case !srcOK:
			fail("spec.sourceAddress", "%q is not an IP address herald's API accepts", s.SourceAddress)
		case peerOK && src.Is4() != peerAddr.Is4():
			fail("spec.sourceAddress", "%s and peerAddress %s are of different families: no session can be opened from one to the other, and herald's API refuses it", s.SourceAddress, s.PeerAddress)
		}
		out.Spec.SourceAddress = s.SourceAddress
	}
	if s.PeerPort != 0 {
		out.Spec.PeerPort = ptr.To(s.PeerPort)
		if s.PeerPort < 1 || s.PeerPort > 65535 {
			fail("spec.peerPort", "%d is not a TCP port", s.PeerPort)
		}
	}
	if !c.timers(p, &out.Spec) {
		ok = false
	}
	if ct := s.ConnectTime; ct != nil {
		if ct.Duration != bgpSeconds(ct.Duration) || ct.Duration < time.Second || ct.Duration > 65535*time.Second {
			fail("spec.connectTime", "%v: not whole seconds between 1s and 65535s (MetalLB refuses it too)", ct.Duration)
		}
		out.Spec.ConnectTime = &metav1.Duration{Duration: ct.Duration}
	}
	out.Spec.EBGPMultiHop = s.EBGPMultiHop
	if s.EBGPMultiHop && s.PeerASN != 0 && s.PeerASN == s.MyASN {
		fail("spec.ebgpMultiHop", "set on an iBGP peer (MetalLB refuses it too)")
	}
	out.Spec.GracefulRestart = s.EnableGracefulRestart
	if s.RouterID != "" {
		if a, valid := parseIP(s.RouterID); !valid || !a.Is4() {
			fail("spec.routerID", "%q: a BGP router ID is 32 bits, and herald's routerID an IPv4 address", s.RouterID)
		}
		out.Spec.RouterID = s.RouterID
	}
	if c.checkSelectors(ref, "spec.nodeSelectors", s.NodeSelectors) {
		var exact bool
		if out.Spec.NodeSelector, exact = oneSelector(s.NodeSelectors); !exact {
			if c.r.narrow(ref, "spec.nodeSelectors", foldReason(len(s.NodeSelectors), "nodeSelector"),
				"only the first selector is kept: nodes only the others select open no session") {
				out.Spec.NodeSelector = &s.NodeSelectors[0]
			} else {
				ok = false
			}
		}
	} else {
		ok = false
	}
	if !c.password(p, &out) {
		ok = false
	}
	if s.BFDProfile != "" {
		if bfd, bfdOK := c.bfdFor(p); bfdOK {
			out.Spec.BFD = bfd
		} else {
			ok = false
		}
	}
	switch v := s.VRFName; {
	case v == "":
	case s.Interface != "":
		fail("spec.vrf", "%q set together with interface: herald's API refuses a VRF on an unnumbered session", v)
	case !bgpplan.ValidInterfaceName(v):
		fail("spec.vrf", "%q is not a Linux device name (herald's API refuses it)", v)
	case s.DualStackAddressFamily:
		// MetalLB's FRR sends the other family's routes over the session
		// too, with a next hop FRR picks from the VRF; herald sends them
		// with the node's address of that family, in the default VRF.
		fail("spec.vrf", "%q with dualStackAddressFamily: MetalLB's FRR sends the other family's routes over the session with a next hop of its own choosing in the VRF, herald with the node's address of that family in the default VRF, which the router may not reach", v)
	default:
		// MetalLB opens the session from FRR's BGP instance for the VRF
		// and originates the routes there: they carry the session's local
		// address as next hop, as herald's do.
		out.Spec.VRF = v
	}
	if s.DisableMP {
		fail("spec.disableMP", "herald offers IPv4 and IPv6 on every session (MP-BGP); it cannot keep one family off a session")
	}
	if !ok {
		return out, false
	}
	if out.Spec.BFD != nil {
		b := c.bfd[p.Metadata.Namespace+"/"+s.BFDProfile].ref
		c.bfdUsers[b] = append(c.bfdUsers[b], "BGPPeer "+name)
	}
	c.comment("BGPPeer", name, "from %s", ref)
	return out, true
}

// password carries the session password over: herald reads it only from
// a Secret in its own namespace.
func (c *converter) password(p *mlbPeer, out *heraldv1.BGPPeer) bool {
	s, ref := p.Spec, p.ref()
	secret := s.PasswordSecret != nil && s.PasswordSecret.Name != ""
	switch {
	case s.Password != "" && secret:
		c.r.refuse(ref, "spec.password", "set together with passwordSecret (MetalLB refuses it too)")
		return false
	case secret:
		out.Spec.PasswordSecretRef = &heraldv1.SecretKeyRef{Name: s.PasswordSecret.Name, Key: "password"}
		ns := s.PasswordSecret.Namespace
		if ns == "" {
			ns = p.Metadata.Namespace
		}
		c.r.note("%s spec.passwordSecret: herald reads the Secret from its own namespace: copy Secret %s/%s (key \"password\") there", ref, ns, s.PasswordSecret.Name)
	case s.Password != "":
		if !c.r.narrow(ref, "spec.password", "herald takes BGP passwords only from a Secret, and the importer writes no Secret",
			"converted without a password, with a TODO comment: the router refuses the session until passwordSecretRef names a Secret in herald's namespace holding it") {
			return false
		}
		c.comment("BGPPeer", out.Name, "TODO: MetalLB had an inline password; put it in a Secret in herald's namespace and add:")
		c.comment("BGPPeer", out.Name, "  passwordSecretRef: {name: %s-bgp-password, key: password}", out.Name)
	}
	return true
}
