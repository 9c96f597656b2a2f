package ctl

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
)

// The BGP half of import-metallb: communities, BGPAdvertisements and
// BGPPeers. A value MetalLB takes that herald cannot express is reported,
// never widened.

var plainCommunity = regexp.MustCompile(`^[0-9]{1,5}:[0-9]{1,5}$`)
var largeCommunity = regexp.MustCompile(`^[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$`)

// communities resolves an advertisement's communities: Community aliases
// (from a Community object in the advertisement's namespace), "large:"
// values, and plain ASN:VALUE.
func (c *converter) communities(a *mlbBGPAdv) (plain, large []string) {
	for _, raw := range a.Spec.Communities {
		v := raw
		for _, cm := range c.in.communities {
			if cm.Metadata.Namespace != a.Metadata.Namespace {
				continue
			}
			for _, e := range cm.Spec.Communities {
				if e.Name == raw {
					v = e.Value
				}
			}
		}
		switch {
		case plainCommunity.MatchString(v):
			plain = append(plain, v)
		case strings.HasPrefix(v, "large:") && largeCommunity.MatchString(strings.TrimPrefix(v, "large:")):
			large = append(large, strings.TrimPrefix(v, "large:"))
		case slices.Contains([]string{"no-export", "no-advertise", "no-export-subconfed", "no-peer", "blackhole"}, v):
			plain = append(plain, v)
		default:
			c.diag("%s spec.communities: %q is not ASN:VALUE, large:GLOBAL:LOCAL1:LOCAL2 or the name of an entry of a Community in %s: dropped", a.ref(), raw, a.Metadata.Namespace)
		}
	}
	slices.Sort(plain)
	slices.Sort(large)
	return slices.Compact(plain), slices.Compact(large)
}

func (c *converter) bgpAnnounce(p *mlbPool, advs []*mlbBGPAdv) *heraldv1.BGPAnnounce {
	out := &heraldv1.BGPAnnounce{}
	names := refs(advs, func(a *mlbBGPAdv) string { return a.ref() })
	pool := p.Metadata.Name

	// Peers: the union; any advertisement without peers means all.
	var peers []string
	allPeers := false
	for _, a := range advs {
		if len(a.Spec.Peers) == 0 {
			allPeers = true
		}
		peers = append(peers, a.Spec.Peers...)
	}
	if !allPeers {
		slices.Sort(peers)
		out.Peers = slices.Compact(peers)
	}

	var sels [][]metav1.LabelSelector
	for _, a := range advs {
		sels = append(sels, a.Spec.NodeSelectors)
	}
	var ok bool
	if out.NodeSelector, ok = advNodeSelector(sels); !ok {
		if len(advs) == 1 {
			c.diag("%s spec.nodeSelectors: %d selectors (any may match) cannot be expressed as herald's one announce.bgp.nodeSelector of IPPool %s: left unset, so every node may announce", advs[0].ref(), len(advs[0].Spec.NodeSelectors), pool)
		} else {
			c.diag("%s spec.nodeSelectors: the nodes these advertisements select for %s cannot be expressed as herald's one announce.bgp.nodeSelector of IPPool %s: left unset, so every node may announce", names, p.ref(), pool)
		}
	}

	// Per-route attributes: herald has one set per pool.
	type attrs struct {
		agg, agg6 int32
		aggSet    bool
		agg6Set   bool
		localPref uint32
		plain     []string
		large     []string
	}
	var all []attrs
	for _, a := range advs {
		x := attrs{agg: 32, agg6: 128, localPref: a.Spec.LocalPref}
		if a.Spec.AggregationLength != nil {
			x.agg, x.aggSet = *a.Spec.AggregationLength, true
		}
		if a.Spec.AggregationLengthV6 != nil {
			x.agg6, x.agg6Set = *a.Spec.AggregationLengthV6, true
		}
		x.plain, x.large = c.communities(a)
		all = append(all, x)
	}
	list := func(get func(attrs) string) string {
		var parts []string
		for i, a := range advs {
			parts = append(parts, fmt.Sprintf("%s: %s", a.Metadata.Namespace+"/"+a.Metadata.Name, get(all[i])))
		}
		return strings.Join(parts, ", ")
	}
	differ := func(get func(attrs) string) bool {
		for _, x := range all {
			if get(x) != get(all[0]) {
				return true
			}
		}
		return false
	}

	aggStr := func(x attrs) string { return fmt.Sprint(x.agg) }
	var maxAgg, maxAgg6 int32
	aggSet, agg6Set := false, false
	for _, x := range all {
		maxAgg, maxAgg6 = max(maxAgg, x.agg), max(maxAgg6, x.agg6)
		aggSet, agg6Set = aggSet || x.aggSet, agg6Set || x.agg6Set
	}
	if differ(aggStr) {
		c.diag("BGPAdvertisement.aggregationLength differs between the advertisements of %s (%s); herald's IPPool %s has one: using %d, the longest, so no aggregate covers addresses outside it", p.ref(), list(aggStr), pool, maxAgg)
	}
	if aggSet {
		out.AggregationLength = ptr.To(maxAgg)
	}
	agg6Str := func(x attrs) string { return fmt.Sprint(x.agg6) }
	if differ(agg6Str) {
		c.diag("BGPAdvertisement.aggregationLengthV6 differs between the advertisements of %s (%s); herald's IPPool %s has one: using %d, the longest", p.ref(), list(agg6Str), pool, maxAgg6)
	}
	if agg6Set {
		out.AggregationLengthV6 = ptr.To(maxAgg6)
	}

	lpStr := func(x attrs) string {
		if x.localPref == 0 {
			return "unset"
		}
		return fmt.Sprint(x.localPref)
	}
	var lp uint32
	for _, x := range all {
		if x.localPref != 0 {
			lp = x.localPref
			break
		}
	}
	if differ(lpStr) {
		c.diag("BGPAdvertisement.localPref differs between the advertisements of %s (%s); herald's IPPool %s has one: using %d", p.ref(), list(lpStr), pool, lp)
	}
	if lp != 0 {
		out.LocalPref = ptr.To(lp)
	}

	var plain, large []string
	for _, x := range all {
		plain, large = append(plain, x.plain...), append(large, x.large...)
	}
	slices.Sort(plain)
	slices.Sort(large)
	out.Communities, out.LargeCommunities = slices.Compact(plain), slices.Compact(large)
	commStr := func(x attrs) string { return fmt.Sprint(append(slices.Clone(x.plain), x.large...)) }
	if differ(commStr) {
		c.diag("BGPAdvertisement.communities differ between the advertisements of %s (%s); herald's IPPool %s attaches one set to every route: using the union", p.ref(), list(commStr), pool)
	}
	if len(advs) > 1 && (differ(aggStr) || differ(agg6Str) || differ(lpStr) || differ(commStr)) && !samePeers(advs) {
		c.diag("BGPAdvertisement.peers: the advertisements of %s send different attributes to different peers (%s); herald sends the same routes to every peer in announce.bgp.peers of IPPool %s", p.ref(), names, pool)
	}
	return out
}

func samePeers(advs []*mlbBGPAdv) bool {
	for _, a := range advs {
		if !slices.Equal(sortedCopy(a.Spec.Peers), sortedCopy(advs[0].Spec.Peers)) {
			return false
		}
	}
	return true
}

// wholeSeconds rounds d to seconds, as herald's BGPPeer durations are.
func wholeSeconds(d *metav1.Duration) (*metav1.Duration, bool) {
	if d == nil {
		return nil, true
	}
	r := d.Round(time.Second)
	return &metav1.Duration{Duration: r}, r == d.Duration
}

func (c *converter) peer(p *mlbPeer) (heraldv1.BGPPeer, bool) {
	s := p.Spec
	name := p.Metadata.Name
	out := heraldv1.BGPPeer{
		TypeMeta:   metav1.TypeMeta{APIVersion: heraldv1.SchemeGroupVersion.String(), Kind: "BGPPeer"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}
	if s.PeerAddress == "" {
		if s.Interface != "" {
			c.diag("%s spec.interface: herald has no unnumbered BGP (sessions over an interface's link-local address): not converted", p.ref())
		} else {
			c.diag("%s spec.peerAddress: missing: not converted", p.ref())
		}
		return out, false
	}
	out.Spec.MyASN = s.MyASN
	out.Spec.PeerASN = s.PeerASN
	switch {
	case s.PeerASN != 0:
	case s.DynamicASN == "internal":
		out.Spec.PeerASN = s.MyASN
	default:
		c.diag("%s spec.dynamicASN: %q: herald needs a fixed peerASN: not converted", p.ref(), s.DynamicASN)
		return out, false
	}
	out.Spec.PeerAddress = s.PeerAddress
	out.Spec.SourceAddress = s.SourceAddress
	if s.PeerPort != 0 {
		out.Spec.PeerPort = ptr.To(s.PeerPort)
	}
	var exact bool
	for _, d := range []struct {
		field string
		in    *metav1.Duration
		out   **metav1.Duration
	}{
		{"holdTime", s.HoldTime, &out.Spec.HoldTime},
		{"keepaliveTime", s.KeepaliveTime, &out.Spec.KeepaliveTime},
		{"connectTime", s.ConnectTime, &out.Spec.ConnectTime},
	} {
		if *d.out, exact = wholeSeconds(d.in); !exact {
			c.diag("%s spec.%s: %v is not whole seconds (BGP carries seconds): rounded to %v", p.ref(), d.field, d.in.Duration, (*d.out).Duration)
		}
	}
	if h := out.Spec.HoldTime; h != nil && h.Duration != 0 && h.Duration < 3*time.Second {
		c.diag("%s spec.holdTime: %v is below the 3s minimum of RFC 4271: raised to 3s", p.ref(), h.Duration)
		h.Duration = 3 * time.Second
	}
	out.Spec.EBGPMultiHop = s.EBGPMultiHop
	out.Spec.GracefulRestart = s.EnableGracefulRestart
	out.Spec.RouterID = s.RouterID
	var ok bool
	if out.Spec.NodeSelector, ok = oneSelector(s.NodeSelectors); !ok {
		c.diag("%s spec.nodeSelectors: %d selectors (any may match) cannot be expressed as herald's one nodeSelector of BGPPeer %s: left unset, so every node opens a session", p.ref(), len(s.NodeSelectors), name)
	}
	switch {
	case s.Password != "" && s.PasswordSecret != nil:
		c.diag("%s spec.password and spec.passwordSecret are both set (MetalLB refuses this): the inline password is dropped", p.ref())
		fallthrough
	case s.PasswordSecret != nil:
		out.Spec.PasswordSecretRef = &heraldv1.SecretKeyRef{Name: s.PasswordSecret.Name, Key: "password"}
		ns := s.PasswordSecret.Namespace
		if ns == "" {
			ns = p.Metadata.Namespace
		}
		c.diag("%s spec.passwordSecret: herald reads the Secret from its own namespace: copy Secret %s/%s (key \"password\") there", p.ref(), ns, s.PasswordSecret.Name)
	case s.Password != "":
		c.diag("%s spec.password: inline passwords cannot be carried over; herald takes BGP passwords only from Secrets: create a Secret in herald's namespace with the password under key \"password\" and set passwordSecretRef (placeholder comment in the output)", p.ref())
		c.comment("BGPPeer", name, "TODO: MetalLB had an inline password; put it in a Secret in herald's namespace and add:")
		c.comment("BGPPeer", name, "  passwordSecretRef: {name: %s-bgp-password, key: password}", name)
	}
	if s.BFDProfile != "" {
		c.diag("%s spec.bfdProfile: %q: herald has no BFD; failure detection falls back to the hold time: dropped", p.ref(), s.BFDProfile)
	}
	if s.VRFName != "" {
		c.diag("%s spec.vrf: %q: herald opens sessions in the default VRF only: dropped, the session will be opened from the default VRF", p.ref(), s.VRFName)
	}
	if s.DisableMP {
		c.diag("%s spec.disableMP: herald always carries IPv6 over the same session with MP-BGP: dropped", p.ref())
	}
	c.comment("BGPPeer", name, "from %s", p.ref())
	return out, true
}
