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
	bfd         []mlbObject
	services    []corev1.Service // core/v1 Services, for their MetalLB annotations
	other       []mlbObject
	unknown     []string // "<object> <path>" of fields import-metallb does not know
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
	}
	t, ok := types[o.Kind]
	if !ok {
		return nil
	}
	var out []string
	for _, p := range unknownFields(j, t) {
		out = append(out, o.ref()+" "+p)
	}
	return out
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
		s.other = append(s.other, head.mlbObject)
		return nil
	}
	var err error
	s.unknown = append(s.unknown, unknownOf(head.mlbObject, j)...)
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
		s.bfd = append(s.bfd, head.mlbObject)
	default:
		s.other = append(s.other, head.mlbObject)
	}
	if err != nil {
		return fmt.Errorf("decoding %s: %w", head.ref(), err)
	}
	return nil
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
// block for each, the herald annotations to add to Services, and one line
// per thing that could not be carried over.
type converted struct {
	Pools       []heraldv1.IPPool
	Peers       []heraldv1.BGPPeer
	Comments    map[string][]string // by "Kind/name" of the herald objects
	Services    []serviceUpdate     // by namespace/name
	Diagnostics []string
}

type converter struct {
	in  *metallbSet
	out converted
}

func (c *converter) diag(format string, args ...any) {
	c.out.Diagnostics = append(c.out.Diagnostics, fmt.Sprintf(format, args...))
}

func (c *converter) comment(kind, name, format string, args ...any) {
	k := kind + "/" + name
	c.out.Comments[k] = append(c.out.Comments[k], fmt.Sprintf(format, args...))
}

func convert(in *metallbSet) converted {
	c := &converter{in: in, out: converted{Comments: map[string][]string{}}}
	sortObjs(in.pools, func(p mlbPool) *mlbObject { return &p.mlbObject })
	sortObjs(in.l2, func(p mlbL2Adv) *mlbObject { return &p.mlbObject })
	sortObjs(in.bgp, func(p mlbBGPAdv) *mlbObject { return &p.mlbObject })
	sortObjs(in.communities, func(p mlbCommunity) *mlbObject { return &p.mlbObject })
	sortObjs(in.peers, func(p mlbPeer) *mlbObject { return &p.mlbObject })
	sortObjs(in.bfd, func(p mlbObject) *mlbObject { return &p })
	sortObjs(in.other, func(p mlbObject) *mlbObject { return &p })

	c.checkReferences()
	seen := map[string]string{}
	for i := range in.pools {
		p := &in.pools[i]
		if prev, dup := seen[p.Metadata.Name]; dup {
			c.diag("%s: an IPPool named %q already comes from %s (IPPools are cluster-scoped): not converted; rename one", p.ref(), p.Metadata.Name, prev)
			continue
		}
		seen[p.Metadata.Name] = p.ref()
		c.out.Pools = append(c.out.Pools, c.pool(p))
	}
	seenPeers := map[string]string{}
	for i := range in.peers {
		p := &in.peers[i]
		if prev, dup := seenPeers[p.Metadata.Name]; dup {
			c.diag("%s: a BGPPeer named %q already comes from %s (herald's BGPPeers are cluster-scoped): not converted; rename one", p.ref(), p.Metadata.Name, prev)
			continue
		}
		seenPeers[p.Metadata.Name] = p.ref()
		if hp, ok := c.peer(p); ok {
			c.out.Peers = append(c.out.Peers, hp)
		}
	}
	c.services()
	slices.Sort(in.unknown)
	for _, u := range in.unknown {
		c.diag("%s: field unknown to heraldctl (a newer MetalLB?): not converted", u)
	}
	for _, b := range in.bfd {
		c.diag("%s: herald has no BFD (session loss is detected by the BGP hold time; lower holdTime/keepaliveTime instead): not converted", b.ref())
	}
	for _, o := range in.other {
		switch {
		case strings.HasPrefix(o.APIVersion, "metallb.io/"):
			c.diag("%s: kind %s has no herald counterpart: not converted", o.ref(), o.Kind)
		default:
			c.diag("%s (%s): not a MetalLB object: skipped", o.ref(), o.APIVersion)
		}
	}
	return c.out
}

func sortObjs[T any](list []T, meta func(T) *mlbObject) {
	slices.SortStableFunc(list, func(a, b T) int {
		ma, mb := meta(a), meta(b)
		return strings.Compare(ma.Metadata.Namespace+"/"+ma.Metadata.Name, mb.Metadata.Namespace+"/"+mb.Metadata.Name)
	})
}

// checkReferences reports advertisements that name pools or peers the
// input does not hold.
func (c *converter) checkReferences() {
	pools := map[string]bool{}
	for _, p := range c.in.pools {
		pools[p.Metadata.Name] = true
	}
	peers := map[string]bool{}
	for _, p := range c.in.peers {
		peers[p.Metadata.Name] = true
	}
	check := func(o *mlbObject, sel *mlbSelection) {
		for _, n := range sel.IPAddressPools {
			if !pools[n] {
				c.diag("%s spec.ipAddressPools: IPAddressPool %q is not in the input: ignored", o.ref(), n)
			}
		}
	}
	for i := range c.in.l2 {
		check(&c.in.l2[i].mlbObject, &c.in.l2[i].Spec.mlbSelection)
	}
	for i := range c.in.bgp {
		a := &c.in.bgp[i]
		check(&a.mlbObject, &a.Spec.mlbSelection)
		for _, n := range a.Spec.Peers {
			if !peers[n] {
				c.diag("%s spec.peers: BGPPeer %q is not in the input: kept in announce.bgp.peers", a.ref(), n)
			}
		}
	}
}

// selects reports whether an advertisement's pool selection takes p.
func selects(sel *mlbSelection, p *mlbPool) bool {
	if len(sel.IPAddressPools) == 0 && len(sel.IPAddressPoolSelectors) == 0 {
		return true
	}
	if slices.Contains(sel.IPAddressPools, p.Metadata.Name) {
		return true
	}
	for _, ls := range sel.IPAddressPoolSelectors {
		s, err := metav1.LabelSelectorAsSelector(&ls)
		if err == nil && s.Matches(labels.Set(p.Metadata.Labels)) {
			return true
		}
	}
	return false
}

func (c *converter) pool(p *mlbPool) heraldv1.IPPool {
	out := heraldv1.IPPool{
		TypeMeta:   metav1.TypeMeta{APIVersion: heraldv1.SchemeGroupVersion.String(), Kind: "IPPool"},
		ObjectMeta: metav1.ObjectMeta{Name: p.Metadata.Name},
	}
	name := p.Metadata.Name
	from := []string{p.ref()}
	for _, a := range p.Spec.Addresses {
		norm, ok := normalizeAddress(a)
		if !ok {
			c.diag("%s spec.addresses: %q is neither a CIDR nor a range of two addresses: dropped", p.ref(), a)
			continue
		}
		out.Spec.Addresses = append(out.Spec.Addresses, norm)
	}
	out.Spec.AutoAssign = p.Spec.AutoAssign
	out.Spec.AvoidBuggyIPs = p.Spec.AvoidBuggyIPs
	if sa := p.Spec.ServiceAllocation; sa != nil {
		if sa.Priority > 0 {
			out.Spec.Priority = ptr.To(int32(sa.Priority))
		}
		out.Spec.Namespaces = slices.Clone(sa.Namespaces)
		var ok bool
		if out.Spec.NamespaceSelector, ok = oneSelector(sa.NamespaceSelectors); !ok {
			c.diag("%s spec.serviceAllocation.namespaceSelectors: %d selectors (any may match) cannot be expressed as herald's one namespaceSelector: left unset, so Services of every namespace may use pool %s", p.ref(), len(sa.NamespaceSelectors), name)
		}
		if out.Spec.ServiceSelector, ok = oneSelector(sa.ServiceSelectors); !ok {
			c.diag("%s spec.serviceAllocation.serviceSelectors: %d selectors (any may match) cannot be expressed as herald's one serviceSelector: left unset, so every Service may use pool %s", p.ref(), len(sa.ServiceSelectors), name)
		}
	}

	var l2 []*mlbL2Adv
	for i := range c.in.l2 {
		if selects(&c.in.l2[i].Spec.mlbSelection, p) {
			l2 = append(l2, &c.in.l2[i])
			from = append(from, c.in.l2[i].ref())
		}
	}
	var bgp []*mlbBGPAdv
	for i := range c.in.bgp {
		if selects(&c.in.bgp[i].Spec.mlbSelection, p) {
			bgp = append(bgp, &c.in.bgp[i])
			from = append(from, c.in.bgp[i].ref())
		}
	}
	if len(l2) > 0 {
		out.Spec.Announce.Layer2 = c.layer2(p, l2)
	}
	if len(bgp) > 0 {
		out.Spec.Announce.BGP = c.bgpAnnounce(p, bgp)
	}
	if len(l2) == 0 && len(bgp) == 0 {
		out.Spec.Announce.Layer2 = &heraldv1.Layer2Announce{}
		c.diag("%s: no L2Advertisement or BGPAdvertisement selects it, so MetalLB does not announce it; herald always announces a pool: IPPool %s gets announce.layer2 (delete it if the addresses must stay unannounced)", p.ref(), name)
	}
	c.comment("IPPool", name, "from %s", strings.Join(from, ", "))
	return out
}

// normalizeAddress turns a MetalLB address entry into herald's form:
// ranges lose their spaces, a bare address becomes a /32 or /128, and a
// CIDR loses its host bits (MetalLB uses the network the CIDR names).
func normalizeAddress(a string) (string, bool) {
	a = strings.TrimSpace(a)
	if lo, hi, ok := strings.Cut(a, "-"); ok {
		l, err1 := netip.ParseAddr(strings.TrimSpace(lo))
		h, err2 := netip.ParseAddr(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || l.Is4() != h.Is4() {
			return "", false
		}
		return l.String() + "-" + h.String(), true
	}
	if strings.Contains(a, "/") {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return "", false
		}
		return p.Masked().String(), true
	}
	ip, err := netip.ParseAddr(a)
	if err != nil {
		return "", false
	}
	return netip.PrefixFrom(ip, ip.BitLen()).String(), true
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
// selects a pool: a node announces if any advertisement selects it.
func advNodeSelector(lists [][]metav1.LabelSelector) (*metav1.LabelSelector, bool) {
	var all []metav1.LabelSelector
	for _, l := range lists {
		if len(l) == 0 {
			return nil, true // this advertisement takes every node
		}
		all = append(all, l...)
	}
	return oneSelector(all)
}

func refs[T any](list []*T, ref func(*T) string) string {
	var out []string
	for _, x := range list {
		out = append(out, ref(x))
	}
	return strings.Join(out, ", ")
}

func (c *converter) layer2(p *mlbPool, advs []*mlbL2Adv) *heraldv1.Layer2Announce {
	out := &heraldv1.Layer2Announce{}
	names := refs(advs, func(a *mlbL2Adv) string { return a.ref() })
	var sels [][]metav1.LabelSelector
	for _, a := range advs {
		sels = append(sels, a.Spec.NodeSelectors)
	}
	var ok bool
	if out.NodeSelector, ok = advNodeSelector(sels); !ok {
		if len(advs) == 1 {
			c.diag("%s spec.nodeSelectors: %d selectors (any may match) cannot be expressed as herald's one announce.layer2.nodeSelector of IPPool %s: left unset, so every node may announce", advs[0].ref(), len(advs[0].Spec.NodeSelectors), p.Metadata.Name)
		} else {
			c.diag("%s spec.nodeSelectors: the nodes these advertisements select for %s cannot be expressed as herald's one announce.layer2.nodeSelector of IPPool %s: left unset, so every node may announce", names, p.ref(), p.Metadata.Name)
		}
	}
	same := true
	var union []string
	anyAll := false
	for _, a := range advs {
		if !slices.Equal(sortedCopy(a.Spec.Interfaces), sortedCopy(advs[0].Spec.Interfaces)) {
			same = false
		}
		if len(a.Spec.Interfaces) == 0 {
			anyAll = true
		}
		union = append(union, a.Spec.Interfaces...)
	}
	switch {
	case same:
		out.Interfaces = sortedCopy(advs[0].Spec.Interfaces)
	case anyAll:
		c.diag("%s spec.interfaces: these advertisements of %s restrict interfaces on only some of the nodes they select; herald's IPPool %s has one interface list for every node: left unset (the interface whose subnet holds the address)", names, p.ref(), p.Metadata.Name)
	default:
		slices.Sort(union)
		out.Interfaces = slices.Compact(union)
		c.diag("%s spec.interfaces: these advertisements of %s use different interfaces on the nodes each selects; herald's IPPool %s has one interface list for every node: using %v everywhere", names, p.ref(), p.Metadata.Name, out.Interfaces)
	}
	return out
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
