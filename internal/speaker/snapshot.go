package speaker

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	heraldlisters "github.com/heraldlb/herald/internal/client/listers/herald/v1alpha1"
)

// Snapshot is what a speaker keeps on its node of the objects it decides
// from, so that one started while the API server is down (a node
// rebooting during an outage) still answers for the addresses it last
// saw: the Nodes, the IPPools and BGPPeers, and the Services that have an
// address to announce, with the EndpointSlices of those with
// externalTrafficPolicy Local. Secrets are never written to disk, so BGP
// peers that need a password wait for the API server.
type Snapshot struct {
	// Saved is when the snapshot was taken.
	Saved          time.Time                   `json:"saved"`
	Nodes          []corev1.Node               `json:"nodes"`
	Services       []corev1.Service            `json:"services"`
	EndpointSlices []discoveryv1.EndpointSlice `json:"endpointSlices,omitempty"`
	Pools          []heraldv1.IPPool           `json:"pools"`
	Peers          []heraldv1.BGPPeer          `json:"peers,omitempty"`
}

// Node returns the snapshot's Node called name.
func (s *Snapshot) Node(name string) (*corev1.Node, bool) {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i], true
		}
	}
	return nil, false
}

// snapshot takes a Snapshot of the live caches.
func (inf *Informers) snapshot(now time.Time) Snapshot {
	l := &inf.live
	snap := Snapshot{Saved: now}
	nodes, _ := l.nodes.List(labels.Everything())
	for _, n := range nodes {
		snap.Nodes = append(snap.Nodes, *n)
	}
	pools, _ := l.pools.List(labels.Everything())
	for _, p := range pools {
		snap.Pools = append(snap.Pools, *p)
	}
	if l.peers != nil {
		peers, _ := l.peers.List(labels.Everything())
		for _, p := range peers {
			snap.Peers = append(snap.Peers, *p)
		}
	}
	svcs, _ := l.svcs.List(labels.Everything())
	for _, svc := range svcs {
		if len(svc.Status.LoadBalancer.Ingress) == 0 && len(svc.Spec.ExternalIPs) == 0 {
			continue
		}
		snap.Services = append(snap.Services, *svc)
		if svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
			continue
		}
		sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name})
		eps, _ := l.slices.EndpointSlices(svc.Namespace).List(sel)
		for _, e := range eps {
			snap.EndpointSlices = append(snap.EndpointSlices, *e)
		}
	}
	return snap
}

// listers serves the snapshot as the informers' listers would.
func (s *Snapshot) listers(bgp bool) *listers {
	index := func(objs ...any) cache.Indexer {
		idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		for _, o := range objs {
			_ = idx.Add(o)
		}
		return idx
	}
	var nodes, svcs, eps, pools, peers []any
	for i := range s.Nodes {
		nodes = append(nodes, &s.Nodes[i])
	}
	for i := range s.Services {
		svcs = append(svcs, &s.Services[i])
	}
	for i := range s.EndpointSlices {
		eps = append(eps, &s.EndpointSlices[i])
	}
	for i := range s.Pools {
		pools = append(pools, &s.Pools[i])
	}
	for i := range s.Peers {
		peers = append(peers, &s.Peers[i])
	}
	l := &listers{
		svcs:   corelisters.NewServiceLister(index(svcs...)),
		slices: discoverylisters.NewEndpointSliceLister(index(eps...)),
		nodes:  corelisters.NewNodeLister(index(nodes...)),
		pools:  heraldlisters.NewIPPoolLister(index(pools...)),
	}
	if bgp {
		l.peers = heraldlisters.NewBGPPeerLister(index(peers...))
		l.secrets = corelisters.NewSecretLister(index())
	}
	return l
}

// WriteSnapshot writes s to path (gzipped JSON, readable by its owner
// only), through a temporary file and a rename, so that a speaker killed
// while writing leaves the previous snapshot intact.
func WriteSnapshot(path string, s Snapshot) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return fmt.Errorf("writing the snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	zw := gzip.NewWriter(tmp)
	if err := json.NewEncoder(zw).Encode(s); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing the snapshot: %w", err)
	}
	if err := zw.Close(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing the snapshot: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing the snapshot: %w", err)
	}
	return nil
}

// ErrNoSnapshot says that no snapshot was saved at the path.
var ErrNoSnapshot = errors.New("no snapshot saved")

// ReadSnapshot reads what WriteSnapshot wrote.
func ReadSnapshot(path string) (*Snapshot, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoSnapshot
	}
	if err != nil {
		return nil, fmt.Errorf("reading the snapshot: %w", err)
	}
	defer func() { _ = f.Close() }()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("reading the snapshot %s: %w", path, err)
	}
	var s Snapshot
	if err := json.NewDecoder(zr).Decode(&s); err != nil {
		return nil, fmt.Errorf("reading the snapshot %s: %w", path, err)
	}
	return &s, nil
}
