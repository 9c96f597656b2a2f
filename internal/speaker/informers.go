package speaker

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	heraldinformers "github.com/heraldlb/herald/internal/client/informers"
	heraldlisters "github.com/heraldlb/herald/internal/client/listers/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/k8s"
)

// Informers are the speaker's caches of the API: everything it decides
// from, and the objects its Events are recorded on.
type Informers struct {
	kubeFactory   kubeinformers.SharedInformerFactory
	heraldFactory heraldinformers.SharedInformerFactory
	// secretFactory is set only with BGP: a speaker without BGP needs no
	// access to Secrets.
	secretFactory kubeinformers.SharedInformerFactory
	namespace     string

	// live are the informers' caches; cur is what the speaker reads now:
	// live, or the snapshot saved on the node while the informers have
	// not synced (snapshot.go).
	live listers
	cur  atomic.Pointer[listers]
	// dirty is set by every change the informers see, and cleared when a
	// snapshot is saved.
	dirty atomic.Bool

	nodeInformer cache.SharedIndexInformer
	changed      chan struct{}
}

// listers are the objects the speaker decides from.
type listers struct {
	svcs    corelisters.ServiceLister
	slices  discoverylisters.EndpointSliceLister
	nodes   corelisters.NodeLister
	pools   heraldlisters.IPPoolLister
	peers   heraldlisters.BGPPeerLister // nil without BGP
	secrets corelisters.SecretLister    // nil without BGP
}

// l is what the speaker reads now.
func (inf *Informers) l() *listers { return inf.cur.Load() }

// factory is what the speaker does with an informer factory.
type factory interface {
	Start(stopCh <-chan struct{})
	Shutdown()
	k8s.Syncer
}

// NewInformers builds the caches; namespace is herald's own, where BGP
// password Secrets live, and bgp says whether this node runs BGP.
func NewInformers(kube kubernetes.Interface, herald versioned.Interface, namespace string, bgp bool) *Informers {
	inf := &Informers{
		kubeFactory:   kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0, kubeinformers.WithTransform(slimObject)),
		heraldFactory: heraldinformers.NewSharedInformerFactory(herald, 0),
		namespace:     namespace,
		changed:       make(chan struct{}, 1),
	}
	svcInf := inf.kubeFactory.Core().V1().Services()
	epsInf := inf.kubeFactory.Discovery().V1().EndpointSlices()
	nodeInf := inf.kubeFactory.Core().V1().Nodes()
	poolInf := inf.heraldFactory.Herald().V1alpha1().IPPools()
	inf.live.svcs, inf.live.slices, inf.live.nodes, inf.live.pools = svcInf.Lister(), epsInf.Lister(), nodeInf.Lister(), poolInf.Lister()
	inf.nodeInformer = nodeInf.Informer()
	informers := []cache.SharedIndexInformer{svcInf.Informer(), epsInf.Informer(), poolInf.Informer()}
	if bgp {
		peerInf := inf.heraldFactory.Herald().V1alpha1().BGPPeers()
		inf.live.peers = peerInf.Lister()
		inf.secretFactory = kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0, kubeinformers.WithNamespace(namespace))
		secretInf := inf.secretFactory.Core().V1().Secrets()
		inf.live.secrets = secretInf.Lister()
		informers = append(informers, peerInf.Informer(), secretInf.Informer())
	}
	inf.cur.Store(&inf.live)
	poke := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { inf.dirty.Store(true); signal(inf.changed) },
		UpdateFunc: func(any, any) { inf.dirty.Store(true); signal(inf.changed) },
		DeleteFunc: func(any) { inf.dirty.Store(true); signal(inf.changed) },
	}
	_, _ = inf.nodeInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { inf.dirty.Store(true) },
		UpdateFunc: func(any, any) { inf.dirty.Store(true) },
		DeleteFunc: func(any) { inf.dirty.Store(true) },
	})
	for _, i := range informers {
		// AddEventHandler fails only on a stopped informer; these have
		// not started.
		_, _ = i.AddEventHandler(poke)
	}
	return inf
}

// onNodes calls f whenever what the speaker reads of a Node changes; a
// node added or deleted counts.
func (inf *Informers) onNodes(f func()) {
	_, _ = inf.nodeInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { f() },
		UpdateFunc: func(oldObj, newObj any) {
			// Kubelets rewrite their Node every few seconds (heartbeats);
			// a full recompute at 10 000 Services costs tens of
			// milliseconds, so only what the decision reads counts.
			o, ok1 := oldObj.(*corev1.Node)
			n, ok2 := newObj.(*corev1.Node)
			if !ok1 || !ok2 || nodeMatters(o) != nodeMatters(n) {
				f()
			}
		},
		DeleteFunc: func(any) { f() },
	})
}

func (inf *Informers) factories() []factory {
	out := []factory{inf.kubeFactory, inf.heraldFactory}
	if inf.secretFactory != nil {
		out = append(out, inf.secretFactory)
	}
	return out
}

// start starts the informers; the channel says when every cache has
// synced (nil), or that ctx ended first.
func (inf *Informers) start(ctx context.Context) <-chan error {
	var syncers []k8s.Syncer
	for _, f := range inf.factories() {
		f.Start(ctx.Done())
		syncers = append(syncers, f)
	}
	synced := make(chan error, 1)
	go func() { synced <- k8s.WaitForSync(ctx, syncers...) }()
	return synced
}

// shutdown stops the informers and waits for their goroutines.
func (inf *Informers) shutdown() {
	for _, f := range inf.factories() {
		f.Shutdown()
	}
}

// Service is the cached Service key ("ns/name"), nil when it is gone.
func (inf *Informers) Service(key string) *corev1.Service {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	svc, err := inf.l().svcs.Services(ns).Get(name)
	if err != nil {
		return nil
	}
	return svc
}

// BGPPeer is the cached BGPPeer name, nil when it is gone or this node
// runs no BGP.
func (inf *Informers) BGPPeer(name string) *heraldv1.BGPPeer {
	peers := inf.l().peers
	if peers == nil {
		return nil
	}
	p, err := peers.Get(name)
	if err != nil {
		return nil
	}
	return p
}

// peerAddrs are the memberlist addresses of every other node: speakers run
// with hostNetwork, so a node's first InternalIP is its speaker's.
func (inf *Informers) peerAddrs(self string, port int) []netip.AddrPort {
	nodes, _ := inf.l().nodes.List(labels.Everything()) // a cache lister never fails
	var peers []netip.AddrPort
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		if ips := k8s.NodeInternalIPs(n); len(ips) > 0 {
			peers = append(peers, netip.AddrPortFrom(ips[0], uint16(port)))
		}
	}
	return peers
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// nodeMatters is what the speaker reads of a Node (labels, InternalIPs,
// NetworkUnavailable), as a comparable string.
func nodeMatters(n *corev1.Node) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
		b.WriteString(k + "=" + n.Labels[k] + "\n")
	}
	for _, ip := range k8s.NodeInternalIPs(n) {
		b.WriteString(ip.String() + "\n")
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable {
			b.WriteString("NetworkUnavailable=" + string(c.Status))
		}
	}
	return b.String()
}

// slimObject drops from cached objects what the speaker never reads:
// managedFields (often the largest part of a small Service) and kubectl's
// last-applied copy of the whole object. At 10 000 Services the caches are
// a large part of a speaker's memory.
func slimObject(obj any) (any, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return obj, nil // a tombstone: left as it is
	}
	m.SetManagedFields(nil)
	if a := m.GetAnnotations(); a[corev1.LastAppliedConfigAnnotation] != "" {
		a = maps.Clone(a)
		delete(a, corev1.LastAppliedConfigAnnotation)
		m.SetAnnotations(a)
	}
	return obj, nil
}
