package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types and reasons of IPPool.status.conditions.
const (
	// ConditionReady is True when herald may allocate from the pool.
	ConditionReady = "Ready"
	// ReasonValid (Ready=True): every entry of spec.addresses is usable.
	ReasonValid = "Valid"
	// ReasonOverlap (Ready=False): the pool shares addresses with an older
	// pool (creationTimestamp, then name); none of its addresses are used.
	ReasonOverlap = "Overlap"
	// ReasonInvalidAddresses (Ready=False): an entry of spec.addresses passed
	// the schema but is still unusable (an IPv6 range whose start is above
	// its end); none of the pool's addresses are used.
	ReasonInvalidAddresses = "InvalidAddresses"

	// ConditionInUseOutsideSpec is True when Services still hold addresses
	// that spec.addresses no longer contains. They keep them; nothing moves.
	ConditionInUseOutsideSpec = "InUseOutsideSpec"
	// ReasonAddressesInUse (InUseOutsideSpec=True): the message says how
	// many addresses and which Services.
	ReasonAddressesInUse = "AddressesInUse"
	// ReasonNoneOutsideSpec (InUseOutsideSpec=False): every allocated
	// address lies inside spec.addresses.
	ReasonNoneOutsideSpec = "NoneOutsideSpec"
)

// IPPool is a set of addresses that Services of type LoadBalancer (and,
// when allowed, spec.externalIPs) may use, and how herald announces them.
//
// +genclient
// +genclient:nonNamespaced
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ipp,categories=herald
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=".spec.addresses"
// +kubebuilder:printcolumn:name="Allocated",type=string,JSONPath=".status.summary.allocated"
// +kubebuilder:printcolumn:name="Free",type=string,JSONPath=".status.summary.free"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type IPPool struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which addresses the pool holds, who may use them and how
	// they are announced.
	// +required
	Spec IPPoolSpec `json:"spec"`
	// status is written by herald-controller.
	// +optional
	Status IPPoolStatus `json:"status,omitempty"`
}

// IPPoolSpec is the desired state of an IPPool.
//
// An aggregate shorter than one of the pool's CIDRs would announce addresses
// outside the pool. Only CIDR entries are checked here; ranges are left to
// the controller.
//
// +kubebuilder:validation:XValidation:rule="!has(self.announce) || !has(self.announce.bgp) || !has(self.announce.bgp.aggregationLength) || self.addresses.all(a, !isCIDR(a) || cidr(a).ip().family() != 4 || cidr(a).prefixLength() <= self.announce.bgp.aggregationLength)",message="announce.bgp.aggregationLength must not be shorter than the prefix length of any IPv4 CIDR in addresses: the aggregate would announce addresses outside this pool",fieldPath=".announce.bgp.aggregationLength"
// +kubebuilder:validation:XValidation:rule="!has(self.announce) || !has(self.announce.bgp) || !has(self.announce.bgp.aggregationLengthV6) || self.addresses.all(a, !isCIDR(a) || cidr(a).ip().family() != 6 || cidr(a).prefixLength() <= self.announce.bgp.aggregationLengthV6)",message="announce.bgp.aggregationLengthV6 must not be shorter than the prefix length of any IPv6 CIDR in addresses: the aggregate would announce addresses outside this pool",fieldPath=".announce.bgp.aggregationLengthV6"
// +kubebuilder:validation:XValidation:rule="!has(self.announce) || !has(self.announce.bgp) || !has(self.announce.bgp.advertisements) || self.announce.bgp.advertisements.all(ad, !has(ad.aggregationLength) || self.addresses.all(a, !isCIDR(a) || cidr(a).ip().family() != 4 || cidr(a).prefixLength() <= ad.aggregationLength))",message="an advertisement's aggregationLength must not be shorter than the prefix length of any IPv4 CIDR in addresses: the aggregate would announce addresses outside this pool",fieldPath=".announce.bgp.advertisements"
// +kubebuilder:validation:XValidation:rule="!has(self.announce) || !has(self.announce.bgp) || !has(self.announce.bgp.advertisements) || self.announce.bgp.advertisements.all(ad, !has(ad.aggregationLengthV6) || self.addresses.all(a, !isCIDR(a) || cidr(a).ip().family() != 6 || cidr(a).prefixLength() <= ad.aggregationLengthV6))",message="an advertisement's aggregationLengthV6 must not be shorter than the prefix length of any IPv6 CIDR in addresses: the aggregate would announce addresses outside this pool",fieldPath=".announce.bgp.advertisements"
type IPPoolSpec struct {
	// addresses the pool hands out. Each entry is a CIDR with no host bits
	// set ("198.51.100.240/28", "2001:db8::/120"; a single address is
	// "198.51.100.7/32") or an inclusive range of one family
	// ("198.51.100.10-198.51.100.20"). Both families may be mixed in one
	// pool. A pool whose entries overlap another pool's is not used.
	//
	// The schema checks IPv4 range order; IPv6 range order is checked by
	// herald-controller (CEL cannot compare IPv6 addresses cheaply), which
	// sets Ready=False with reason InvalidAddresses.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=100
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]))",message="each address must be a CIDR such as 198.51.100.240/28 or 2001:db8::/120 (a single address is 198.51.100.7/32), or a range of two addresses without spaces such as 198.51.100.10-198.51.100.20"
	// +kubebuilder:validation:items:XValidation:rule="!isCIDR(self) || cidr(self) == cidr(self).masked()",messageExpression="'CIDR %s has host bits set; did you mean %s?'.format([self, string(cidr(self).masked())])",message="a CIDR must not have host bits set"
	// +kubebuilder:validation:items:XValidation:rule="!(self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1])) || ip(self.split('-')[0]).family() == ip(self.split('-')[1]).family()",message="both ends of a range must be of the same family (IPv4 or IPv6)"
	// +kubebuilder:validation:items:XValidation:rule="!(self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]) && ip(self.split('-')[0]).family() == 4 && ip(self.split('-')[1]).family() == 4) || ((int(self.split('-')[0].split('.')[0]) * 256 + int(self.split('-')[0].split('.')[1])) * 256 + int(self.split('-')[0].split('.')[2])) * 256 + int(self.split('-')[0].split('.')[3]) <= ((int(self.split('-')[1].split('.')[0]) * 256 + int(self.split('-')[1].split('.')[1])) * 256 + int(self.split('-')[1].split('.')[2])) * 256 + int(self.split('-')[1].split('.')[3])",message="the first address of a range must not be above the last"
	Addresses []string `json:"addresses"`

	// autoAssign lets Services that name no pool draw from this one. With
	// false the pool is used only by Services that name it in the
	// herald.dev/pool annotation or request one of its addresses.
	// +optional
	// +kubebuilder:default=true
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// avoidBuggyIPs skips IPv4 addresses ending in .0 or .255, which some
	// old client stacks treat as broadcast addresses.
	// +optional
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// priority orders pools when several match a Service: lower wins, ties
	// go to the pool whose name sorts first, and pools without a priority
	// come after all pools that have one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Priority *int32 `json:"priority,omitempty"`

	// serviceSelector limits the pool to Services whose labels match.
	// Unset: any Service.
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`

	// namespaceSelector limits the pool to Services in namespaces whose
	// labels match. Unset: any namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// namespaces limits the pool to Services in these namespaces. Empty:
	// any namespace. When namespaceSelector is also set, a Service's
	// namespace must satisfy both.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	Namespaces []string `json:"namespaces,omitempty"`

	// externalIPs makes herald also announce the spec.externalIPs of
	// Services (of any type) that fall inside this pool. externalIPs outside
	// every pool are never announced.
	// +optional
	ExternalIPs bool `json:"externalIPs,omitempty"`

	// hold keeps the speakers from announcing any of the pool's addresses,
	// while herald-controller still assigns and keeps them. It is for
	// installing herald beside another load balancer that still announces
	// them: set hold: false (or remove it) to take a pool over, then make
	// the other one let go.
	// +optional
	Hold bool `json:"hold,omitempty"`

	// announce says how the pool's addresses are made reachable: layer2
	// (ARP/NDP from one node per address), bgp (route advertisements from
	// every eligible node), or both. Omitted, it defaults to {layer2: {}} so
	// that a pool is never silently unannounced.
	// +optional
	// +kubebuilder:default={layer2:{}}
	Announce Announce `json:"announce,omitzero"`
}

// Announce selects the announcement protocols of a pool.
//
// +kubebuilder:validation:XValidation:rule="has(self.layer2) || has(self.bgp)",message="announce must set layer2, bgp or both (omit announce altogether to get layer2)"
type Announce struct {
	// layer2 answers ARP (IPv4) and NDP (IPv6) for each address from
	// exactly one node. {} is enough to turn it on.
	// +optional
	Layer2 *Layer2Announce `json:"layer2,omitempty"`

	// bgp advertises each address to the node's BGP peers from every
	// eligible node (ECMP at the router).
	// +optional
	BGP *BGPAnnounce `json:"bgp,omitempty"`
}

// Layer2Announce configures ARP/NDP announcement.
type Layer2Announce struct {
	// interfaces the node may answer on. Empty: the interface whose subnet
	// holds the address, else the interface of the default route.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=15
	Interfaces []string `json:"interfaces,omitempty"`

	// nodeSelector limits the nodes that may announce. Unset: all nodes.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
}

// BGPAnnounce configures BGP advertisement. Its own fields are the pool's
// first advertisement; advertisements adds more, each with its own peers,
// nodes and attributes. A peer receives an address when at least one
// advertisement that selects the peer and the announcing node covers it,
// with the communities of all of those advertisements and the highest of
// their local preferences.
type BGPAnnounce struct {
	BGPAdvertisement `json:",inline"`

	// advertisements announces the pool's addresses again, to other peers,
	// from other nodes or with other attributes, as several MetalLB
	// BGPAdvertisements do. Each is independent of the others and of the
	// fields above.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Advertisements []NamedBGPAdvertisement `json:"advertisements,omitempty"`
}

// NamedBGPAdvertisement is one more advertisement of a pool's addresses.
type NamedBGPAdvertisement struct {
	// name tells the advertisement apart in the list, in Events and logs.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	BGPAdvertisement `json:",inline"`
}

// BGPAdvertisement says to which peers, from which nodes and with which
// attributes a pool's addresses are advertised.
//
// +kubebuilder:validation:XValidation:rule="!has(self.peers) || !has(self.peerSelector)",message="name the peers with peers or peerSelector, not both"
type BGPAdvertisement struct {
	// peers are names of BGPPeer objects to advertise to. Empty (and no
	// peerSelector): every peer of each announcing node.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	Peers []string `json:"peers,omitempty"`

	// peerSelector selects the BGPPeer objects to advertise to by their
	// labels. A selector that matches no peer advertises to none.
	// +optional
	PeerSelector *metav1.LabelSelector `json:"peerSelector,omitempty"`

	// nodeSelector limits the nodes that may announce. Unset: all nodes.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// communities attached to the routes: "ASN:VALUE" with both numbers in
	// 0..65535 ("64512:100"), or one of the well-known names no-export,
	// no-advertise, no-export-subconfed, no-peer, blackhole.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=32
	// +kubebuilder:validation:items:XValidation:rule="self in ['no-export', 'no-advertise', 'no-export-subconfed', 'no-peer', 'blackhole'] || (self.matches('^[0-9]{1,5}:[0-9]{1,5}$') && self.split(':').all(n, int(n) <= 65535))",message="a community is ASN:VALUE with both numbers in 0..65535 (64512:100), or one of no-export, no-advertise, no-export-subconfed, no-peer, blackhole"
	Communities []string `json:"communities,omitempty"`

	// largeCommunities (RFC 8092) attached to the routes:
	// "GLOBAL:LOCAL1:LOCAL2", each number in 0..4294967295 ("64512:1:100").
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=32
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && self.split(':').all(n, int(n) <= 4294967295)",message="a large community is three numbers in 0..4294967295 separated by colons (64512:1:100)"
	LargeCommunities []string `json:"largeCommunities,omitempty"`

	// localPref is the LOCAL_PREF attribute of the routes. It is sent to
	// iBGP peers only (peers whose peerASN equals myASN); eBGP peers never
	// receive it.
	// +optional
	// +kubebuilder:validation:Format=int64
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	LocalPref *uint32 `json:"localPref,omitempty"`

	// aggregationLength is the prefix length advertised for IPv4 addresses:
	// 32 advertises each address alone; shorter advertises the covering
	// prefix once. It must not be shorter than any IPv4 CIDR of the pool.
	// +optional
	// +kubebuilder:default=32
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// aggregationLengthV6 is aggregationLength for IPv6 addresses (0..128).
	// +optional
	// +kubebuilder:default=128
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`
}

// IPPoolStatus is the observed state of an IPPool, written by
// herald-controller.
type IPPoolStatus struct {
	// ipv4 counts the pool's IPv4 addresses. Unset when it has none.
	// +optional
	IPv4 *FamilyUsage `json:"ipv4,omitempty"`

	// ipv6 counts the pool's IPv6 addresses. Unset when it has none.
	// +optional
	IPv6 *FamilyUsage `json:"ipv6,omitempty"`

	// summary is a one-line digest for kubectl's columns.
	// +optional
	Summary PoolSummary `json:"summary,omitzero"`

	// outsideSpec lists, as CIDRs or ranges a-b, the addresses Services
	// still hold from this pool that spec.addresses no longer contains
	// (see the InUseOutsideSpec condition). Speakers announce an address
	// outside the spec under this pool only when it is listed here, so a
	// Service's pool annotation cannot bring in an address the pool never
	// held. Unset when there are none, or more ranges than fit.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=4096
	// +kubebuilder:validation:items:MaxLength=100
	OutsideSpec []string `json:"outsideSpec,omitempty"`

	// conditions: Ready (False with reason Overlap or InvalidAddresses) and
	// InUseOutsideSpec.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchMergeKey=type
	// +patchStrategy=merge
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// FamilyUsage counts the addresses of one family in a pool. total and free
// are decimal strings because an IPv6 pool (a /64 holds 2^64 addresses)
// exceeds int64.
type FamilyUsage struct {
	// total is the number of usable addresses in spec.addresses (after
	// avoidBuggyIPs), in decimal.
	// +required
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	Total string `json:"total"`

	// allocated is the number of addresses held by Services, including
	// those outside spec.addresses (see the InUseOutsideSpec condition).
	// +required
	// +kubebuilder:validation:Minimum=0
	Allocated int64 `json:"allocated"`

	// free is the number of addresses still available, in decimal.
	// +required
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	Free string `json:"free"`
}

// PoolSummary holds human-readable strings for kubectl's printer columns.
type PoolSummary struct {
	// allocated counts allocated addresses of both families, e.g. "v4:3 v6:1".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Allocated string `json:"allocated,omitempty"`

	// free counts free IPv4 addresses if the pool has IPv4, else free IPv6
	// addresses, e.g. "13".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Free string `json:"free,omitempty"`
}

// IPPoolList is a list of IPPools.
//
// +kubebuilder:object:root=true
type IPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	// items are the IPPools.
	Items []IPPool `json:"items"`
}

// BGPPeer is a router that herald's speakers open BGP sessions with. Every
// node selected by nodeSelector runs one session to it; which addresses are
// advertised over the session is decided by the IPPools' announce.bgp.
//
// +genclient
// +genclient:nonNamespaced
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=herald
// +kubebuilder:printcolumn:name="Peer",type=string,JSONPath=".spec.peerAddress"
// +kubebuilder:printcolumn:name="Interface",type=string,JSONPath=".spec.interface",priority=1
// +kubebuilder:printcolumn:name="Peer-ASN",type=integer,JSONPath=".spec.peerASN"
// +kubebuilder:printcolumn:name="My-ASN",type=integer,JSONPath=".spec.myASN"
// +kubebuilder:printcolumn:name="Up",type=integer,JSONPath=".status.sessionsUp"
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=".status.sessionsTotal"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type BGPPeer struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the session.
	// +required
	Spec BGPPeerSpec `json:"spec"`
	// status is written by herald's speakers.
	// +optional
	Status BGPPeerStatus `json:"status,omitempty"`
}

// BGPPeerSpec is the desired state of a BGPPeer.
//
// Durations are whole seconds written like 90s, 3m or 1m30s: BGP carries
// them in seconds.
//
// +kubebuilder:validation:XValidation:rule="has(self.peerAddress) != has(self.interface)",message="exactly one of peerAddress and interface must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.interface) || !has(self.sourceAddress)",message="sourceAddress cannot be used with interface: the session runs from the interface's link-local address",fieldPath=".sourceAddress"
// +kubebuilder:validation:XValidation:rule="!has(self.interface) || !has(self.vrf)",message="vrf cannot be used with interface",fieldPath=".vrf"
// +kubebuilder:validation:XValidation:rule="!has(self.sourceAddress) || !has(self.peerAddress) || !isIP(self.sourceAddress) || !isIP(self.peerAddress) || ip(self.sourceAddress).family() == ip(self.peerAddress).family()",message="sourceAddress and peerAddress must be of the same family",fieldPath=".sourceAddress"
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTime) || !has(self.holdTime) || !self.keepaliveTime.matches('^([0-9]{1,6}[hms]){1,3}$') || !self.holdTime.matches('^([0-9]{1,6}[hms]){1,3}$') || duration(self.keepaliveTime) < duration(self.holdTime) || duration(self.keepaliveTime) == duration('0s') && duration(self.holdTime) == duration('0s')",message="keepaliveTime must be shorter than holdTime (0s or unset when holdTime is 0s)",fieldPath=".keepaliveTime"
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTime) || !self.keepaliveTime.matches('^([0-9]{1,6}[hms]){1,3}$') || duration(self.keepaliveTime) != duration('0s') || has(self.holdTime) && self.holdTime.matches('^([0-9]{1,6}[hms]){1,3}$') && duration(self.holdTime) == duration('0s')",message="keepaliveTime 0s (no keepalives) needs holdTime 0s: RFC 4271 sends keepalives whenever the hold time is not 0",fieldPath=".keepaliveTime"
// +kubebuilder:validation:XValidation:rule="has(self.peerASN) != has(self.dynamicASN)",message="exactly one of peerASN and dynamicASN must be set"
type BGPPeerSpec struct {
	// myASN is the AS number the speakers use on this session. Equal to
	// peerASN makes it an iBGP session.
	// +required
	// +kubebuilder:validation:Format=int64
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	MyASN uint32 `json:"myASN"`

	// peerASN is the router's AS number. Exactly one of peerASN and
	// dynamicASN is set.
	// +optional
	// +kubebuilder:validation:Format=int64
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	PeerASN uint32 `json:"peerASN,omitempty"`

	// dynamicASN accepts the router's AS number from its OPEN message
	// instead of naming it in peerASN: internal (the router's AS must be
	// myASN, an iBGP session) or external (it must differ, eBGP). A router
	// of the other kind gets no route: the speaker closes the session,
	// reports a PeerConfigProblem Event and does not dial again until the
	// BGPPeer changes.
	// +optional
	// +kubebuilder:validation:Enum=internal;external
	DynamicASN DynamicASN `json:"dynamicASN,omitempty"`

	// peerAddress is the router's IPv4 or IPv6 address. The speakers dial
	// it; they never listen for incoming sessions. Exactly one of
	// peerAddress and interface is set.
	// +optional
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="peerAddress must be an IPv4 or IPv6 address such as 198.51.100.1 or 2001:db8::1"
	PeerAddress string `json:"peerAddress,omitempty"`

	// interface makes this an unnumbered session: the name of a node
	// interface whose link leads to the router, which is dialled at its
	// IPv6 link-local address on that link (as FRR's "neighbor IFACE
	// interface"). The speaker finds that address in the node's neighbour
	// table, where the router's router advertisements or neighbour
	// solicitations put it; it keeps looking until there is exactly one
	// link-local neighbour on the interface. Only IPv6 routes are sent over
	// such a session (IPv4 ones would need RFC 5549 next hops). Exactly one
	// of peerAddress and interface is set.
	// +optional
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[^/\s:]+$`
	Interface string `json:"interface,omitempty"`

	// peerPort is the router's TCP port.
	// +optional
	// +kubebuilder:default=179
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	PeerPort *int32 `json:"peerPort,omitempty"`

	// sourceAddress is the local address the session is opened from; it
	// must exist on every selected node, so it is mostly useful with a
	// nodeSelector matching one node. Unset: chosen by the kernel's routing.
	// +optional
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="sourceAddress must be an IPv4 or IPv6 address"
	SourceAddress string `json:"sourceAddress,omitempty"`

	// holdTime is the BGP hold time proposed to the router: 0s (no
	// keepalives, never time out) or between 3s and 65535s (RFC 4271).
	// The session's hold time is the smaller of this and the router's.
	// The speakers' BGP library (GoBGP v3) cannot run a session without
	// a hold time: it proposes 90s for 0s, and a session whose router
	// proposes 0 fails at its first UPDATE.
	// +optional
	// +kubebuilder:default="90s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,6}[hms]){1,3}$')",message="holdTime must be a whole number of seconds written like 90s, 3m or 1m30s"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}[hms]){1,3}$') || duration(self) == duration('0s') || (duration(self) >= duration('3s') && duration(self) <= duration('65535s'))",message="holdTime must be 0s or between 3s and 65535s"
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`

	// keepaliveTime is the interval between keepalive messages. It must be
	// shorter than holdTime; 0s only with holdTime 0s. The speaker sends
	// keepalives at most a third of the negotiated hold time apart (the
	// smaller of holdTime and the router's), and none when that is 0.
	// Unset: a third of the negotiated hold time.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,6}[hms]){1,3}$')",message="keepaliveTime must be a whole number of seconds written like 30s or 1m"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}[hms]){1,3}$') || duration(self) == duration('0s') || (duration(self) >= duration('1s') && duration(self) <= duration('21845s'))",message="keepaliveTime must be 0s or between 1s and 21845s"
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`

	// connectTime is how long the speaker waits between attempts to open
	// the TCP connection. Unset: 5s (GoBGP's own default, 120s, would leave
	// a router that comes back unpeered for minutes).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,6}[hms]){1,3}$')",message="connectTime must be a whole number of seconds written like 10s or 2m"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}[hms]){1,3}$') || (duration(self) >= duration('1s') && duration(self) <= duration('65535s'))",message="connectTime must be between 1s and 65535s"
	ConnectTime *metav1.Duration `json:"connectTime,omitempty"`

	// ebgpMultiHop allows an eBGP router that is not on a directly
	// connected network (the session's IP TTL is raised). Ignored for iBGP.
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`

	// passwordSecretRef names the key of a Secret, in the namespace herald
	// runs in, that holds the TCP-MD5 password of the session. There is no
	// inline password field.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`

	// gracefulRestart turns on BGP graceful restart (RFC 4724): the router
	// keeps a restarting speaker's routes for the restart time. Off by
	// default because with it on, routes of a speaker that died outright
	// keep attracting traffic for that time too.
	// +optional
	// +kubebuilder:default=false
	GracefulRestart bool `json:"gracefulRestart,omitempty"`

	// nodeSelector limits the nodes that open a session to this peer.
	// Unset: all nodes.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// bfd runs a BFD session (RFC 5880) beside the BGP session, single-hop
	// (RFC 5881), or multihop (RFC 5883) when ebgpMultiHop is set. A router
	// running BFD for the session then drops it, and the routes it learned
	// from the node, within the BFD detection time instead of the hold
	// time; the speaker drops its own side too. {} turns it on with the
	// defaults. Unset: no BFD.
	// +optional
	BFD *BFDProfile `json:"bfd,omitempty"`

	// vrf is the name of a Linux VRF device on the node: the session is
	// opened from that VRF (its socket bound to the device, so the VRF's
	// routing table reaches the peer) and the routes sent over it carry
	// the session's own local address as next hop, one the peer can reach
	// inside the VRF. Unset: the default VRF. A node without the device
	// cannot open the session (it stays down, and says so in its log).
	// +optional
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[^/\s:]+$`
	VRF string `json:"vrf,omitempty"`

	// routerID is the BGP router ID to use (an IPv4 address). Unset: the
	// node's IPv4 InternalIP, or on a node with IPv6 InternalIPs only the
	// last 32 bits of the first of them. A node runs one BGP server with one router
	// ID, so when the peers of a node disagree herald uses the default and
	// records a Warning Event; a change takes effect when the speaker
	// restarts.
	// +optional
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="routerID must be an IPv4 address such as 198.51.100.1"
	RouterID string `json:"routerID,omitempty"`
}

// BFDProfile is how a BGPPeer's BFD session runs: the settings of MetalLB's
// BFDProfile. Intervals are written like 300ms or 1s.
type BFDProfile struct {
	// receiveInterval is the shortest interval at which this end wants to
	// receive BFD packets. Default 300ms; 10ms to 60s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,6}(ms|s|m))+$') && duration(self) >= duration('10ms') && duration(self) <= duration('60s')",message="receiveInterval must be between 10ms and 60s, written like 300ms or 1s"
	ReceiveInterval *metav1.Duration `json:"receiveInterval,omitempty"`

	// transmitInterval is the shortest interval at which this end wants to
	// send them. Default 300ms; 10ms to 60s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,6}(ms|s|m))+$') && duration(self) >= duration('10ms') && duration(self) <= duration('60s')",message="transmitInterval must be between 10ms and 60s, written like 300ms or 1s"
	TransmitInterval *metav1.Duration `json:"transmitInterval,omitempty"`

	// detectMultiplier is how many intervals without a packet the router
	// waits before it declares the session down. Default 3.
	// +optional
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	DetectMultiplier *int32 `json:"detectMultiplier,omitempty"`

	// echoMode must stay false: the echo function needs packets looped back
	// by a forwarding plane, which herald's userspace BFD does not have.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self",message="echoMode is not supported: herald's BFD runs in userspace, without a forwarding plane to loop echo packets through"
	EchoMode bool `json:"echoMode,omitempty"`

	// passiveMode sends nothing until the router has sent a BFD packet.
	// +optional
	PassiveMode bool `json:"passiveMode,omitempty"`

	// minimumTTL is the lowest TTL a multihop BFD packet may arrive with
	// (single-hop packets must always arrive with 255). Default 254.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	MinimumTTL *int32 `json:"minimumTTL,omitempty"`
}

// DynamicASN is the kind of session a BGPPeer without peerASN accepts.
type DynamicASN string

const (
	// DynamicASNInternal accepts a router in myASN (iBGP).
	DynamicASNInternal DynamicASN = "internal"
	// DynamicASNExternal accepts a router in any other AS (eBGP).
	DynamicASNExternal DynamicASN = "external"
)

// SecretKeyRef names one key of a Secret in herald's own namespace.
type SecretKeyRef struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key in the Secret's data whose value is the password.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// BGPPeerStatus is the observed state of a BGPPeer, written by
// herald-controller from the sessions each node's speaker reports in its
// Speaker object. Per-node session state is in metrics and `heraldctl
// status`.
type BGPPeerStatus struct {
	// sessionsUp is the number of nodes whose session is Established.
	// +optional
	SessionsUp int32 `json:"sessionsUp"`

	// sessionsTotal is the number of nodes that should have a session.
	// +optional
	SessionsTotal int32 `json:"sessionsTotal"`

	// conditions of the peer.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchMergeKey=type
	// +patchStrategy=merge
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// BGPPeerList is a list of BGPPeers.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	// items are the BGPPeers.
	Items []BGPPeer `json:"items"`
}
