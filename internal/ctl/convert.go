package ctl

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
)

// metallbSet is everything import-metallb read, by kind.
type metallbSet struct {
	pools       []mlbPool
	l2          []mlbL2Adv
	bgp         []mlbBGPAdv
	communities []mlbCommunity
	peers       []mlbPeer
	bfd         []mlbBFD
	services    []corev1.Service // core/v1 Services, for their MetalLB annotations
	other       []mlbObject
	legacy      []mlbObject         // ConfigMaps that hold MetalLB's configuration of old
	unknown     map[string][]string // by object: spec fields import-metallb does not know
}

// unknownOf reports the spec fields of a MetalLB object that its Go type
// here does not declare.
func unknownOf(o mlbObject, j []byte) []string {
	types := map[string]reflect.Type{
		"IPAddressPool":    reflect.TypeFor[mlbPool](),
		"L2Advertisement":  reflect.TypeFor[mlbL2Adv](),
		"BGPAdvertisement": reflect.TypeFor[mlbBGPAdv](),
		"Community":        reflect.TypeFor[mlbCommunity](),
		"BGPPeer":          reflect.TypeFor[mlbPeer](),
		"BFDProfile":       reflect.TypeFor[mlbBFD](),
	}
	t, ok := types[o.Kind]
	if !ok {
		return nil
	}
	return unknownFields(j, t)
}

// readMetalLB decodes multi-document YAML (or JSON), including `kind:
// List` documents, into s.
func (s *metallbSet) read(r io.Reader) error {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading YAML: %w", err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("parsing YAML: %w", err)
		}
		if len(j) == 0 || string(j) == "null" {
			continue
		}
		if err := s.add(j); err != nil {
			return err
		}
	}
}

func (s *metallbSet) add(j []byte) error {
	var head struct {
		mlbObject `json:",inline"`
		Items     []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(j, &head); err != nil {
		return fmt.Errorf("decoding an object: %w", err)
	}
	if strings.HasSuffix(head.Kind, "List") && head.Items != nil {
		for _, it := range head.Items {
			if err := s.add(it); err != nil {
				return err
			}
		}
		return nil
	}
	if head.APIVersion == "v1" && head.Kind == "Service" {
		if err := decodeInto(j, &s.services); err != nil {
			return fmt.Errorf("decoding %s: %w", head.ref(), err)
		}
		return nil
	}
	group, _, _ := strings.Cut(head.APIVersion, "/")
	if group != "metallb.io" {
		if isLegacyConfig(head.mlbObject, j) {
			s.legacy = append(s.legacy, head.mlbObject)
		} else {
			s.other = append(s.other, head.mlbObject)
		}
		return nil
	}
	var err error
	if u := unknownOf(head.mlbObject, j); len(u) > 0 {
		if s.unknown == nil {
			s.unknown = map[string][]string{}
		}
		s.unknown[head.ref()] = append(s.unknown[head.ref()], u...)
	}
	switch head.Kind {
	case "IPAddressPool":
		err = decodeInto(j, &s.pools)
	case "L2Advertisement":
		err = decodeInto(j, &s.l2)
	case "BGPAdvertisement":
		err = decodeInto(j, &s.bgp)
	case "Community":
		err = decodeInto(j, &s.communities)
	case "BGPPeer":
		err = decodeInto(j, &s.peers)
	case "BFDProfile":
		err = decodeInto(j, &s.bfd)
	default:
		s.other = append(s.other, head.mlbObject)
	}
	if err != nil {
		return fmt.Errorf("decoding %s: %w", head.ref(), err)
	}
	return nil
}

// isLegacyConfig reports whether o is a ConfigMap in the form MetalLB read
// its whole configuration from before its custom resources: a "config"
// key holding address-pools, peers or bgp-communities.
func isLegacyConfig(o mlbObject, j []byte) bool {
	if o.APIVersion != "v1" || o.Kind != "ConfigMap" {
		return false
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if json.Unmarshal(j, &cm) != nil {
		return false
	}
	cfg, ok := cm.Data["config"]
	if !ok {
		return false
	}
	for _, k := range []string{"address-pools", "peers", "bgp-communities"} {
		if strings.Contains(cfg, k) {
			return true
		}
	}
	return false
}

func decodeInto[T any](j []byte, list *[]T) error {
	var v T
	if err := json.Unmarshal(j, &v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

// converted is import-metallb's result: herald objects and a comment
// block for each, the herald annotations to add to Services, and the
// report of what was refused, lost or needs the reader.
type converted struct {
	Pools    []heraldv1.IPPool
	Peers    []heraldv1.BGPPeer
	Comments map[string][]string // by "Kind/name" of the herald objects
	Services []serviceUpdate     // by namespace/name
	Report   report
}

// convertOptions are import-metallb's flags that change the conversion.
type convertOptions struct {
	// AllowLossy converts the narrower-or-equal form of an object herald
	// cannot express exactly, instead of refusing it.
	AllowLossy bool
	// Hold writes every IPPool with hold: true, for the cut-over: herald
	// then keeps the addresses MetalLB still announces without announcing
	// them itself, until each pool is released.
	Hold bool
}

type converter struct {
	in   *metallbSet
	out  converted
	r    *report
	hold bool // convertOptions.Hold
	// communitiesUsed are the Community objects each advertisement's
	// aliases resolved through, for the pools' "from" comments.
	communitiesUsed map[string][]string
	// advCommunities are each advertisement's communities, plain and
	// large, resolved once.
	advCommunities map[string][2][]string
	// bfd are the BFDProfiles that convert, by namespace/name, and
	// bfdUsers the converted BGPPeers that carry each.
	bfd      map[string]*bfdConv
	bfdUsers map[string][]string
}

// diag is a note: the Service half of the conversion reports with it.
func (c *converter) diag(format string, args ...any) {
	c.r.note(format, args...)
}

func (c *converter) comment(kind, name, format string, args ...any) {
	k := kind + "/" + name
	c.out.Comments[k] = append(c.out.Comments[k], fmt.Sprintf(format, args...))
}

func convert(in *metallbSet, opts convertOptions) converted {
	c := &converter{in: in, out: converted{
		Comments: map[string][]string{},
		Report:   report{allowLossy: opts.AllowLossy, refused: map[string]bool{}},
	}, hold: opts.Hold, communitiesUsed: map[string][]string{}, advCommunities: map[string][2][]string{}}
	c.r = &c.out.Report
	sortObjs(in.pools, func(p mlbPool) *mlbObject { return &p.mlbObject })
	sortObjs(in.l2, func(p mlbL2Adv) *mlbObject { return &p.mlbObject })
	sortObjs(in.bgp, func(p mlbBGPAdv) *mlbObject { return &p.mlbObject })
	sortObjs(in.communities, func(p mlbCommunity) *mlbObject { return &p.mlbObject })
	sortObjs(in.peers, func(p mlbPeer) *mlbObject { return &p.mlbObject })
	sortObjs(in.bfd, func(p mlbBFD) *mlbObject { return &p.mlbObject })
	sortObjs(in.other, func(p mlbObject) *mlbObject { return &p })
	sortObjs(in.legacy, func(p mlbObject) *mlbObject { return &p })

	c.unknownFields()
	c.checkCommunities()
	for i := range in.l2 {
		c.checkL2(&in.l2[i])
	}
	for i := range in.bgp {
		c.checkBGPAdv(&in.bgp[i])
	}
	seen := map[string]string{}
	for i := range in.pools {
		p := &in.pools[i]
		if prev, dup := seen[p.Metadata.Name]; dup {
			c.r.refuse(p.ref(), "metadata.name", "an IPPool named %q already comes from %s (IPPools are cluster-scoped); rename one", p.Metadata.Name, prev)
			continue
		}
		seen[p.Metadata.Name] = p.ref()
		if hp, ok := c.pool(p); ok {
			c.out.Pools = append(c.out.Pools, hp)
		}
	}
	c.unusedAdvertisements()
	c.checkBFDProfiles()
	seenPeers := map[string]string{}
	for i := range in.peers {
		p := &in.peers[i]
		if prev, dup := seenPeers[p.Metadata.Name]; dup {
			c.r.refuse(p.ref(), "metadata.name", "a BGPPeer named %q already comes from %s (herald's BGPPeers are cluster-scoped); rename one", p.Metadata.Name, prev)
			continue
		}
		seenPeers[p.Metadata.Name] = p.ref()
		if hp, ok := c.peer(p); ok {
			c.out.Peers = append(c.out.Peers, hp)
		}
	}
	c.bfdNotes()
	c.services()
	for _, o := range in.legacy {
		c.r.refuse(o.ref(), "data.config", "MetalLB's configuration from before its custom resources is not read; convert it to MetalLB's custom resources first and import those")
	}
	for _, o := range in.other {
		switch {
		case metallbStatusKinds[o.Kind] && strings.HasPrefix(o.APIVersion, "metallb.io/"):
			c.r.note("%s: status that MetalLB writes, not configuration: nothing to convert", o.ref())
		case strings.HasPrefix(o.APIVersion, "metallb.io/"):
			c.r.refuse(o.ref(), "", "kind %s has no herald counterpart", o.Kind)
		default:
			c.r.note("%s (%s): not a MetalLB object: skipped", o.ref(), o.APIVersion)
		}
	}
	return c.out
}

// metallbStatusKinds are the metallb.io kinds MetalLB writes itself.
var metallbStatusKinds = map[string]bool{"ServiceL2Status": true, "ServiceBGPStatus": true, "ConfigurationState": true}

func sortObjs[T any](list []T, meta func(T) *mlbObject) {
	slices.SortStableFunc(list, func(a, b T) int {
		ma, mb := meta(a), meta(b)
		return strings.Compare(ma.Metadata.Namespace+"/"+ma.Metadata.Name, mb.Metadata.Namespace+"/"+mb.Metadata.Name)
	})
}

// unknownFields refuses every object with a spec field heraldctl does not
// know: whatever it means, dropping it could widen.
func (c *converter) unknownFields() {
	refs := make([]string, 0, len(c.in.unknown))
	for ref := range c.in.unknown {
		refs = append(refs, ref)
	}
	slices.Sort(refs)
	for _, ref := range refs {
		for _, path := range c.in.unknown[ref] {
			c.r.refuse(ref, path, "field unknown to heraldctl (a newer MetalLB?)")
		}
	}
}

// checkSelectors refuses ref when one of sels is not a valid label
// selector, as MetalLB does.
func (c *converter) checkSelectors(ref, field string, sels []metav1.LabelSelector) bool {
	for i := range sels {
		if _, err := metav1.LabelSelectorAsSelector(&sels[i]); err != nil {
			c.r.refuse(ref, fmt.Sprintf("%s[%d]", field, i), "%v (MetalLB refuses it too)", err)
			return false
		}
	}
	return true
}

// checkPoolSelection reports the pools an advertisement names or selects
// that the input does not hold: herald's IPPools carry the announcement,
// so for a missing pool there is nothing to carry it to.
func (c *converter) checkPoolSelection(o *mlbObject, sel *mlbSelection) {
	if !c.checkSelectors(o.ref(), "spec.ipAddressPoolSelectors", sel.IPAddressPoolSelectors) {
		return
	}
	names := map[string]bool{}
	for _, p := range c.in.pools {
		names[p.Metadata.Name] = true
	}
	for _, n := range sel.IPAddressPools {
		if !names[n] {
			c.r.narrow(o.ref(), "spec.ipAddressPools", fmt.Sprintf("IPAddressPool %q is not in the input", n),
				fmt.Sprintf("announces only the pools of the input; an IPPool %s created later is not announced by this conversion", n))
		}
	}
	for i, ls := range sel.IPAddressPoolSelectors {
		matched := false
		for j := range c.in.pools {
			if matchesAny([]metav1.LabelSelector{ls}, c.in.pools[j].Metadata.Labels) {
				matched = true
			}
		}
		if !matched {
			c.r.narrow(o.ref(), fmt.Sprintf("spec.ipAddressPoolSelectors[%d]", i), "selects no IPAddressPool of the input",
				"announces only the pools of the input")
		}
	}
	if len(sel.IPAddressPools) == 0 && len(sel.IPAddressPoolSelectors) == 0 && len(c.in.pools) == 0 {
		c.r.narrow(o.ref(), "spec", "selects every IPAddressPool, and the input has none", "nothing to announce")
	}
}

func matchesAny(sels []metav1.LabelSelector, l map[string]string) bool {
	for i := range sels {
		s, err := metav1.LabelSelectorAsSelector(&sels[i])
		if err == nil && s.Matches(labels.Set(l)) {
			return true
		}
	}
	return false
}

// selects reports whether an advertisement's pool selection takes p.
func selects(sel *mlbSelection, p *mlbPool) bool {
	if len(sel.IPAddressPools) == 0 && len(sel.IPAddressPoolSelectors) == 0 {
		return true
	}
	return slices.Contains(sel.IPAddressPools, p.Metadata.Name) || matchesAny(sel.IPAddressPoolSelectors, p.Metadata.Labels)
}

// linuxIfNameMax is IFNAMSIZ less the terminating NUL: no interface has a
// longer name, and herald's API refuses one.
const linuxIfNameMax = 15

func (c *converter) checkL2(a *mlbL2Adv) {
	ref := a.ref()
	c.checkPoolSelection(&a.mlbObject, &a.Spec.mlbSelection)
	c.checkSelectors(ref, "spec.nodeSelectors", a.Spec.NodeSelectors)
	if len(a.Spec.ServiceSelectors) > 0 {
		c.r.refuse(ref, "spec.serviceSelectors", "herald announces every Service of a pool alike; it cannot announce only some Services' addresses, and announcing all would be wider")
	}
	if len(a.Spec.PreferredNodeSelectors) > 0 {
		c.r.narrow(ref, "spec.preferredNodeSelectors", "herald elects the announcing node among the eligible ones without preferences",
			"dropped: the same nodes stay eligible, and which one announces is herald's election alone")
	}
	if len(a.Spec.Interfaces) > 32 {
		c.r.refuse(ref, "spec.interfaces", "%d interfaces; herald's announce.layer2.interfaces holds at most 32", len(a.Spec.Interfaces))
	}
	for _, name := range a.Spec.Interfaces {
		if name == "" || len(name) > linuxIfNameMax {
			c.r.refuse(ref, "spec.interfaces", "%q is not an interface name (1 to %d characters)", name, linuxIfNameMax)
		}
	}
}

// unusedAdvertisements reports the advertisements that ended up in no
// IPPool's "from" comment without having been refused or reported: they
// select pools, but every one of those was refused.
func (c *converter) unusedAdvertisements() {
	used := map[string]bool{}
	for _, p := range c.out.Pools {
		for _, line := range c.out.Comments["IPPool/"+p.Name] {
			for _, part := range strings.Split(strings.TrimPrefix(line, "from "), ", ") {
				used[part] = true
			}
		}
	}
	named := func(ref string) bool {
		for _, f := range c.r.findings {
			if strings.Contains(f.text, ref) {
				return true
			}
		}
		return false
	}
	check := func(o *mlbObject) {
		if used[o.ref()] || c.r.refused[o.ref()] || named(o.ref()) {
			return
		}
		c.r.refuse(o.ref(), "", "every IPAddressPool it selects was refused, so it is in no IPPool")
	}
	for i := range c.in.l2 {
		check(&c.in.l2[i].mlbObject)
	}
	for i := range c.in.bgp {
		check(&c.in.bgp[i].mlbObject)
	}
	for i := range c.in.communities {
		cm := &c.in.communities[i]
		if used[cm.ref()] || c.r.refused[cm.ref()] {
			continue
		}
		c.r.note("%s: no converted BGPAdvertisement uses its aliases: nothing to convert", cm.ref())
	}
}

func (c *converter) pool(p *mlbPool) (heraldv1.IPPool, bool) {
	ref := p.ref()
	name := p.Metadata.Name
	out := heraldv1.IPPool{
		TypeMeta:   metav1.TypeMeta{APIVersion: heraldv1.SchemeGroupVersion.String(), Kind: "IPPool"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}
	ok := !c.r.refused[ref]
	if len(p.Spec.Addresses) == 0 {
		c.r.refuse(ref, "spec.addresses", "empty (MetalLB refuses it too)")
		ok = false
	}
	if len(p.Spec.Addresses) > 64 {
		c.r.refuse(ref, "spec.addresses", "%d entries; herald's IPPool holds at most 64", len(p.Spec.Addresses))
		ok = false
	}
	for _, a := range p.Spec.Addresses {
		norm, why := normalizeAddress(a)
		if why != "" {
			c.r.refuse(ref, "spec.addresses", "%q: %s (MetalLB refuses it too)", a, why)
			ok = false
			continue
		}
		out.Spec.Addresses = append(out.Spec.Addresses, norm)
	}
	out.Spec.AutoAssign = p.Spec.AutoAssign
	out.Spec.Hold = c.hold
	out.Spec.AvoidBuggyIPs = p.Spec.AvoidBuggyIPs
	if sa := p.Spec.ServiceAllocation; sa != nil && !c.serviceAllocation(p, &out.Spec) {
		ok = false
	}

	from := []string{ref}
	var l2 []*mlbL2Adv
	for i := range c.in.l2 {
		if a := &c.in.l2[i]; selects(&a.Spec.mlbSelection, p) {
			l2 = append(l2, a)
		}
	}
	var bgp []*mlbBGPAdv
	for i := range c.in.bgp {
		if a := &c.in.bgp[i]; selects(&a.Spec.mlbSelection, p) {
			bgp = append(bgp, a)
		}
	}
	var deps []string
	for _, a := range l2 {
		if c.r.refused[a.ref()] {
			deps = append(deps, a.ref())
		}
	}
	for _, a := range bgp {
		if c.r.refused[a.ref()] {
			deps = append(deps, a.ref())
		}
	}
	if len(deps) > 0 {
		c.r.refuse(ref, "", "selected by %s, which is refused: without it the pool would be announced differently", strings.Join(deps, ", "))
		return out, false
	}
	if len(l2) > 0 {
		var l2ok bool
		if out.Spec.Announce.Layer2, l2, l2ok = c.layer2(p, l2); !l2ok {
			ok = false
		}
	}
	if len(bgp) > 0 {
		var bgpOK bool
		if out.Spec.Announce.BGP, bgp, bgpOK = c.bgpAnnounce(p, &out.Spec, bgp); !bgpOK {
			ok = false
		}
	}
	if len(l2) == 0 && len(bgp) == 0 && ok {
		if !c.r.narrow(ref, "", "no L2Advertisement or BGPAdvertisement selects it, so MetalLB hands out its addresses but announces none; a herald IPPool is always announced",
			"announce.layer2 with a nodeSelector no node matches (label "+unannouncedLabel+" both Exists and DoesNotExist), so no node announces") {
			return out, false
		}
		out.Spec.Announce.Layer2 = &heraldv1.Layer2Announce{NodeSelector: noNode()}
	}
	if !ok {
		return out, false
	}
	for _, a := range l2 {
		from = append(from, a.ref())
	}
	for _, a := range bgp {
		from = append(from, a.ref())
		from = append(from, c.communitiesUsed[a.ref()]...)
	}
	c.comment("IPPool", name, "from %s", strings.Join(compactKeepOrder(from), ", "))
	return out, true
}

func compactKeepOrder(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// unannouncedLabel is the key of the selector that matches no node, for a
// pool MetalLB allocates from without announcing it.
const unannouncedLabel = "herald.dev/unannounced"

func noNode() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: unannouncedLabel, Operator: metav1.LabelSelectorOpExists},
		{Key: unannouncedLabel, Operator: metav1.LabelSelectorOpDoesNotExist},
	}}
}

// serviceAllocation carries spec.serviceAllocation over to spec, and
// reports whether the pool may still be converted.
func (c *converter) serviceAllocation(p *mlbPool, spec *heraldv1.IPPoolSpec) bool {
	ref, sa := p.ref(), p.Spec.ServiceAllocation
	ok := true
	switch {
	case sa.Priority > 0:
		spec.Priority = ptr.To(int32(sa.Priority))
	case sa.Priority < 0:
		c.r.refuse(ref, "spec.serviceAllocation.priority", "%d: herald's priority is 0 or more, and MetalLB orders a negative one inconsistently", sa.Priority)
		ok = false
	}
	if !c.checkSelectors(ref, "spec.serviceAllocation.namespaceSelectors", sa.NamespaceSelectors) ||
		!c.checkSelectors(ref, "spec.serviceAllocation.serviceSelectors", sa.ServiceSelectors) {
		return false
	}
	spec.Namespaces = slices.Clone(sa.Namespaces)
	nsSels := sa.NamespaceSelectors
	if len(sa.Namespaces) > 0 && len(nsSels) > 0 {
		// MetalLB takes a namespace listed or selected; herald's two fields
		// must both match.
		if !c.r.narrow(ref, "spec.serviceAllocation.namespaceSelectors",
			"MetalLB lets Services of the listed namespaces and of the selected ones use the pool; herald's namespaces and namespaceSelector must both match",
			"only namespaces is kept: Services of namespaces only the selectors match cannot use the pool") {
			ok = false
		}
		nsSels = nil
	}
	var exact bool
	if spec.NamespaceSelector, exact = oneSelector(nsSels); !exact {
		if c.r.narrow(ref, "spec.serviceAllocation.namespaceSelectors", foldReason(len(nsSels), "namespaceSelector"),
			"only the first selector is kept: Services of namespaces only the others match cannot use the pool") {
			spec.NamespaceSelector = &nsSels[0]
		} else {
			ok = false
		}
	}
	if spec.ServiceSelector, exact = oneSelector(sa.ServiceSelectors); !exact {
		if c.r.narrow(ref, "spec.serviceAllocation.serviceSelectors", foldReason(len(sa.ServiceSelectors), "serviceSelector"),
			"only the first selector is kept: Services only the others match cannot use the pool") {
			spec.ServiceSelector = &sa.ServiceSelectors[0]
		} else {
			ok = false
		}
	}
	return ok
}

func foldReason(n int, heraldField string) string {
	return fmt.Sprintf("%d selectors (any may match) that herald's one %s cannot hold", n, heraldField)
}

// normalizeAddress turns a MetalLB address entry into herald's form:
// ranges lose their spaces, a bare address becomes a /32 or /128, and a
// CIDR loses its host bits (MetalLB uses the network the CIDR names). The
// second result says why a entry is not an address set; "" when it is.
func normalizeAddress(a string) (string, string) {
	a = strings.TrimSpace(a)
	if lo, hi, ok := strings.Cut(a, "-"); ok {
		l, err1 := netip.ParseAddr(strings.TrimSpace(lo))
		h, err2 := netip.ParseAddr(strings.TrimSpace(hi))
		switch {
		case err1 != nil || err2 != nil || l.Zone() != "" || h.Zone() != "":
			return "", "not a range of two addresses"
		case l.Is4() != h.Is4():
			return "", "a range whose ends are of different families"
		case h.Less(l):
			return "", "a range whose first address is above its last"
		}
		return l.String() + "-" + h.String(), ""
	}
	if strings.Contains(a, "/") {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return "", "not a CIDR"
		}
		return p.Masked().String(), ""
	}
	ip, err := netip.ParseAddr(a)
	if err != nil || ip.Zone() != "" {
		return "", "neither a CIDR nor a range of two addresses"
	}
	return netip.PrefixFrom(ip, ip.BitLen()).String(), ""
}

// oneSelector folds MetalLB's list of selectors (any may match) into one.
// It succeeds when the list is empty, holds one selector, holds an empty
// selector (matches everything), or every selector constrains the same
// single label to one value or a set of values: those become one "In".
func oneSelector(sels []metav1.LabelSelector) (*metav1.LabelSelector, bool) {
	switch len(sels) {
	case 0:
		return nil, true
	case 1:
		s := sels[0]
		if len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0 {
			return nil, true
		}
		return &s, true
	}
	var key string
	var values []string
	for _, s := range sels {
		if len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0 {
			return nil, true
		}
		k, vs, ok := singleKey(s)
		if !ok || (key != "" && k != key) {
			return nil, false
		}
		key = k
		values = append(values, vs...)
	}
	slices.Sort(values)
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: key, Operator: metav1.LabelSelectorOpIn, Values: slices.Compact(values),
	}}}, true
}

func singleKey(s metav1.LabelSelector) (string, []string, bool) {
	switch {
	case len(s.MatchLabels) == 1 && len(s.MatchExpressions) == 0:
		for k, v := range s.MatchLabels {
			return k, []string{v}, true
		}
	case len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 1:
		e := s.MatchExpressions[0]
		if e.Operator == metav1.LabelSelectorOpIn {
			return e.Key, e.Values, true
		}
	}
	return "", nil, false
}

// advNodeSelector folds the node selectors of every advertisement that
// selects a pool: a node announces if any advertisement selects it. The
// second result is the narrower stand-in when they do not fold: the
// first selector of the first advertisement that has any.
func advNodeSelector(lists [][]metav1.LabelSelector) (*metav1.LabelSelector, bool, *metav1.LabelSelector) {
	var all []metav1.LabelSelector
	for _, l := range lists {
		if len(l) == 0 {
			return nil, true, nil // this advertisement takes every node
		}
		all = append(all, l...)
	}
	s, ok := oneSelector(all)
	if ok {
		return s, true, nil
	}
	return nil, false, &all[0]
}

func refs[T any](list []*T, ref func(*T) string) string {
	var out []string
	for _, x := range list {
		out = append(out, ref(x))
	}
	return strings.Join(out, ", ")
}

// sameSelectors reports whether every list of node selectors is the same
// set.
func sameSelectors(lists [][]metav1.LabelSelector) bool {
	key := func(l []metav1.LabelSelector) string {
		var parts []string
		for _, s := range l {
			b, _ := json.Marshal(s)
			parts = append(parts, string(b))
		}
		slices.Sort(parts)
		return strings.Join(slices.Compact(parts), "\n")
	}
	for _, l := range lists {
		if key(l) != key(lists[0]) {
			return false
		}
	}
	return true
}

// layer2 folds the L2Advertisements of p into herald's one
// announce.layer2. Several advertisements fold exactly when they give
// every node the same interfaces, or select the same nodes (each node
// then answers on the union of their interfaces). It returns the
// advertisements the result stands for (fewer with --allow-lossy) and
// whether the pool may still be converted.
func (c *converter) layer2(p *mlbPool, advs []*mlbL2Adv) (*heraldv1.Layer2Announce, []*mlbL2Adv, bool) {
	ref := p.ref()
	var sels [][]metav1.LabelSelector
	for _, a := range advs {
		sels = append(sels, a.Spec.NodeSelectors)
	}
	sameIfaces := true
	for _, a := range advs {
		if !slices.Equal(sortedCopy(a.Spec.Interfaces), sortedCopy(advs[0].Spec.Interfaces)) {
			sameIfaces = false
		}
	}
	if !sameIfaces && !sameSelectors(sels) {
		var lists []string
		for _, a := range advs {
			lists = append(lists, fmt.Sprintf("%s: %s", a.ref(), ifaceList(a.Spec.Interfaces)))
		}
		if !c.r.narrow(ref, "", fmt.Sprintf("its L2Advertisements give different nodes different interfaces (%s); herald's IPPool %s has one interface list for all its nodes",
			strings.Join(lists, "; "), p.Metadata.Name),
			"only "+advs[0].ref()+" is converted for this pool") {
			return nil, advs, false
		}
		advs, sels = advs[:1], sels[:1]
	}
	out := &heraldv1.Layer2Announce{}
	var union []string
	for _, a := range advs {
		if len(a.Spec.Interfaces) == 0 {
			union = nil // all interfaces
			break
		}
		union = append(union, a.Spec.Interfaces...)
	}
	slices.Sort(union)
	out.Interfaces = slices.Compact(union)

	sel, ok, first := advNodeSelector(sels)
	if !ok {
		if !c.r.narrow(ref, "", fmt.Sprintf("the nodeSelectors of %s (any may match) cannot be folded into herald's one announce.layer2.nodeSelector of IPPool %s",
			refs(advs, func(a *mlbL2Adv) string { return a.ref() }), p.Metadata.Name),
			"only the first selector is kept: nodes only the others select do not announce") {
			return nil, advs, false
		}
		sel = first
	}
	out.NodeSelector = sel
	return out, advs, true
}

func ifaceList(ifs []string) string {
	if len(ifs) == 0 {
		return "all interfaces"
	}
	return "[" + strings.Join(sortedCopy(ifs), " ") + "]"
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
