package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Speaker reports what the herald-speaker on one node announces. There is
// one per node, named after it, written only by that node's speaker and
// only when its announcements, health or view of the cluster change, so
// it costs writes in proportion to changes, never per Service event.
// `heraldctl status` joins these into a per-address view; `kubectl get
// speakers` shows one line per node.
//
// +genclient
// +genclient:nonNamespaced
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=herald
// +kubebuilder:printcolumn:name="Healthy",type=boolean,JSONPath=".status.healthy"
// +kubebuilder:printcolumn:name="Layer2",type=integer,JSONPath=".status.layer2Count"
// +kubebuilder:printcolumn:name="BGP",type=integer,JSONPath=".status.bgpCount"
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=".status.members"
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=".status.version"
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=".status.memberlistPrimaryKey"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type Speaker struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// status is written by the node's speaker.
	// +optional
	Status SpeakerStatus `json:"status,omitzero"`
}

// SpeakerStatus is one node's announcements.
type SpeakerStatus struct {
	// version is the herald-speaker release running on the node
	// (`herald-speaker --version`), so an upgrade's progress shows in
	// `kubectl get speakers` and `heraldctl version`.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Version string `json:"version,omitempty"`

	// healthy is the node's own health check: announcing interface up
	// and kube-proxy healthy. An unhealthy node announces nothing.
	// +optional
	Healthy bool `json:"healthy"`

	// interfacesDown are the interfaces named by layer-2 pools
	// (announce.layer2.interfaces) that this node cannot answer on: down,
	// without carrier, or absent. The pools naming none of its other
	// interfaces are answered by other nodes; the node's other pools and
	// BGP are unaffected. "*" alone: more were down than the speakers'
	// memberlist metadata carries, and every named interface counts as
	// down.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=15
	InterfacesDown []string `json:"interfacesDown,omitempty"`

	// members is how many speakers (this one included) this node sees
	// alive in the memberlist cluster. Nodes that disagree indicate a
	// partition.
	// +optional
	Members int32 `json:"members"`

	// liveMembers names the speakers this node sees alive; a node whose
	// Speaker object claims announcements but that no live speaker lists
	// has stopped without withdrawing its report.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=5000
	// +kubebuilder:validation:items:MaxLength=253
	LiveMembers []string `json:"liveMembers,omitempty"`

	// layer2Count and bgpCount count the announcements below.
	// +optional
	Layer2Count int32 `json:"layer2Count"`
	// +optional
	BGPCount int32 `json:"bgpCount"`

	// announcements are the addresses this node announces now, sorted by
	// address: at most the first 1000, so that the object stays small
	// (10 000 entries would be over a megabyte, beyond what etcd stores,
	// written again on every change); layer2Count and bgpCount count all.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	Announcements []Announcement `json:"announcements,omitempty"`

	// announcementsOmitted counts this node's announcements beyond the
	// ones listed.
	// +optional
	AnnouncementsOmitted int32 `json:"announcementsOmitted,omitempty"`

	// bgpSessions are this node's sessions with the BGPPeers that select
	// it; the controller sums them into each BGPPeer's status.
	// +optional
	// +listType=map
	// +listMapKey=peer
	// +kubebuilder:validation:MaxItems=1000
	BGPSessions []BGPSession `json:"bgpSessions,omitempty"`

	// memberlistKeys are the fingerprints (the first 8 bytes of the
	// SHA-256, in hex; never the keys) of the memberlist keys this node
	// decrypts with, sorted. During a key rotation, `heraldctl rotate-key`
	// waits until every speaker lists the same keys.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=16
	MemberlistKeys []string `json:"memberlistKeys,omitempty"`

	// memberlistPrimaryKey is the fingerprint of the key this node
	// encrypts with.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	MemberlistPrimaryKey string `json:"memberlistPrimaryKey,omitempty"`

	// updated is when this report was written.
	// +optional
	Updated metav1.Time `json:"updated,omitzero"`
}

// Announcement is one address a node announces over one protocol.
type Announcement struct {
	// address announced.
	// +kubebuilder:validation:MaxLength=45
	Address string `json:"address"`
	// protocol is layer2 or bgp.
	// +kubebuilder:validation:Enum=layer2;bgp
	Protocol string `json:"protocol"`
	// pool the address belongs to.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Pool string `json:"pool,omitempty"`
	// services using the address, namespace/name.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=317
	Services []string `json:"services,omitempty"`
	// via names the interfaces (layer2) or BGP peers (bgp) used; empty
	// means chosen automatically.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	Via []string `json:"via,omitempty"`
	// since is when this node started announcing the address.
	Since metav1.Time `json:"since"`
}

// BGPSession is one node's session with one BGPPeer.
type BGPSession struct {
	// peer is the BGPPeer's name.
	// +kubebuilder:validation:MaxLength=253
	Peer string `json:"peer"`
	// up is true while the session is Established.
	Up bool `json:"up"`
	// reason says why the session cannot come up, when herald knows: an
	// unnumbered peer whose router is not found on its interface, or a
	// dynamicASN router of the wrong kind.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`
}

// SpeakerList is a list of Speakers.
//
// +kubebuilder:object:root=true
type SpeakerList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	// items are the Speakers.
	Items []Speaker `json:"items"`
}
