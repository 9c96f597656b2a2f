package ctl

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The MetalLB types below are the subset of metallb.io/v1beta1 and
// v1beta2 that import-metallb reads, declared here so that herald does not
// depend on MetalLB's module. Fields herald cannot carry are still decoded
// so that they can be reported.

// mlbObject is one decoded MetalLB object of any kind.
type mlbObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
}

type mlbPool struct {
	mlbObject `json:",inline"`
	Spec      struct {
		Addresses         []string `json:"addresses"`
		AutoAssign        *bool    `json:"autoAssign,omitempty"`
		AvoidBuggyIPs     bool     `json:"avoidBuggyIPs,omitempty"`
		ServiceAllocation *struct {
			Priority           int                    `json:"priority,omitempty"`
			Namespaces         []string               `json:"namespaces,omitempty"`
			NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`
			ServiceSelectors   []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
		} `json:"serviceAllocation,omitempty"`
	} `json:"spec"`
}

// mlbSelection is how an advertisement picks pools: by name, by label, or
// (neither set) every pool.
type mlbSelection struct {
	IPAddressPools         []string               `json:"ipAddressPools,omitempty"`
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
}

type mlbL2Adv struct {
	mlbObject `json:",inline"`
	Spec      struct {
		mlbSelection           `json:",inline"`
		Interfaces             []string               `json:"interfaces,omitempty"`
		ServiceSelectors       []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
		PreferredNodeSelectors []struct {
			Weight     int32                `json:"weight"`
			Preference metav1.LabelSelector `json:"preference"`
		} `json:"preferredNodeSelectors,omitempty"`
	} `json:"spec"`
}

type mlbBGPAdv struct {
	mlbObject `json:",inline"`
	Spec      struct {
		mlbSelection        `json:",inline"`
		AggregationLength   *int32                 `json:"aggregationLength,omitempty"`
		AggregationLengthV6 *int32                 `json:"aggregationLengthV6,omitempty"`
		LocalPref           uint32                 `json:"localPref,omitempty"`
		Communities         []string               `json:"communities,omitempty"`
		Peers               []string               `json:"peers,omitempty"`
		ServiceSelectors    []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
	} `json:"spec"`
}

type mlbCommunity struct {
	mlbObject `json:",inline"`
	Spec      struct {
		Communities []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"communities,omitempty"`
	} `json:"spec"`
}

type mlbPeer struct {
	mlbObject `json:",inline"`
	Spec      struct {
		MyASN          uint32                 `json:"myASN"`
		PeerASN        uint32                 `json:"peerASN,omitempty"`
		LocalASN       uint32                 `json:"localASN,omitempty"`
		DynamicASN     string                 `json:"dynamicASN,omitempty"`
		PeerAddress    string                 `json:"peerAddress,omitempty"`
		Interface      string                 `json:"interface,omitempty"`
		SourceAddress  string                 `json:"sourceAddress,omitempty"`
		PeerPort       int32                  `json:"peerPort,omitempty"`
		HoldTime       *metav1.Duration       `json:"holdTime,omitempty"`
		KeepaliveTime  *metav1.Duration       `json:"keepaliveTime,omitempty"`
		ConnectTime    *metav1.Duration       `json:"connectTime,omitempty"`
		RouterID       string                 `json:"routerID,omitempty"`
		NodeSelectors  []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
		Password       string                 `json:"password,omitempty"`
		PasswordSecret *struct {
			Name      string `json:"name,omitempty"`
			Namespace string `json:"namespace,omitempty"`
		} `json:"passwordSecret,omitempty"`
		BFDProfile             string `json:"bfdProfile,omitempty"`
		EnableGracefulRestart  bool   `json:"enableGracefulRestart,omitempty"`
		EBGPMultiHop           bool   `json:"ebgpMultiHop,omitempty"`
		VRFName                string `json:"vrf,omitempty"`
		DisableMP              bool   `json:"disableMP,omitempty"`
		DualStackAddressFamily bool   `json:"dualStackAddressFamily,omitempty"`
	} `json:"spec"`
}

// mlbBFD is MetalLB's BFDProfile: intervals in milliseconds, every field
// optional (FRR's default then applies).
type mlbBFD struct {
	mlbObject `json:",inline"`
	Spec      struct {
		ReceiveInterval  *uint32 `json:"receiveInterval,omitempty"`
		TransmitInterval *uint32 `json:"transmitInterval,omitempty"`
		DetectMultiplier *uint32 `json:"detectMultiplier,omitempty"`
		EchoInterval     *uint32 `json:"echoInterval,omitempty"`
		EchoMode         *bool   `json:"echoMode,omitempty"`
		PassiveMode      *bool   `json:"passiveMode,omitempty"`
		MinimumTTL       *uint32 `json:"minimumTtl,omitempty"`
	} `json:"spec"`
}

func (o *mlbObject) ref() string {
	if o.Metadata.Namespace == "" {
		return o.Kind + " " + o.Metadata.Name
	}
	return o.Kind + " " + o.Metadata.Namespace + "/" + o.Metadata.Name
}
