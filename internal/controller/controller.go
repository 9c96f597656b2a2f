package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/heraldlb/herald/internal/allocator"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	heraldinformers "github.com/heraldlb/herald/internal/client/informers"
	heraldlisters "github.com/heraldlb/herald/internal/client/listers/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/k8s"
)

// Event reasons on Services.
const (
	EventIPAllocated      = "IPAllocated"
	EventAllocationFailed = "AllocationFailed"
	EventIPReleased       = "IPReleased"
	// EventExternalIPRefused: a spec.externalIPs entry herald will not
	// announce (outside every opt-in pool, or a load balancer's address).
	EventExternalIPRefused = "ExternalIPRefused"
)

// Config wires a Controller.
type Config struct {
	Kube     kubernetes.Interface
	Herald   versioned.Interface
	Class    k8s.Class
	Recorder record.EventRecorder
	Log      *slog.Logger
	Registry prometheus.Registerer
	// Workers reconcile in parallel; API writes dominate, so a few help.
	Workers int
	// PoolStatusDelay batches IPPool status writes during bursts.
	PoolStatusDelay time.Duration
}

type itemKind uint8

const (
	kindService itemKind = iota
	kindPool
	kindPeer
)

// item is the work queue's key: a Service (namespace/name) or an IPPool.
type item struct {
	kind itemKind
	key  string
}

// Controller allocates addresses to LoadBalancer Services.
type Controller struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	queue workqueue.TypedRateLimitingInterface[item]

	svcs     corelisters.ServiceLister
	nss      corelisters.NamespaceLister
	pools    heraldlisters.IPPoolLister
	peers    heraldlisters.BGPPeerLister
	speakers heraldlisters.SpeakerLister

	kubeFactory   kubeinformers.SharedInformerFactory
	heraldFactory heraldinformers.SharedInformerFactory

	mu    sync.Mutex // guards alloc and pending
	alloc *allocator.Allocator
	// pending are Services that wait for an address; they are retried when
	// an address is released or the pools change.
	pending map[string]struct{}

	ready atomic.Bool
}

// New builds a Controller; Run starts it.
func New(cfg Config) *Controller {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.PoolStatusDelay == 0 {
		cfg.PoolStatusDelay = 500 * time.Millisecond
	}
	if cfg.Recorder == nil {
		cfg.Recorder = &record.FakeRecorder{}
	}
	c := &Controller{
		cfg:     cfg,
		log:     cfg.Log,
		m:       newMetrics(cfg.Registry),
		alloc:   allocator.New(),
		pending: map[string]struct{}{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[item](),
			workqueue.TypedRateLimitingQueueConfig[item]{Name: "herald-controller"}),
	}
	// No periodic resync: every change arrives as an event, and a full
	// resync of 10 000 Services would only burn CPU.
	c.kubeFactory = kubeinformers.NewSharedInformerFactory(cfg.Kube, 0)
	c.heraldFactory = heraldinformers.NewSharedInformerFactory(cfg.Herald, 0)

	svcInf := c.kubeFactory.Core().V1().Services()
	nsInf := c.kubeFactory.Core().V1().Namespaces()
	poolInf := c.heraldFactory.Herald().V1alpha1().IPPools()
	c.svcs, c.nss, c.pools = svcInf.Lister(), nsInf.Lister(), poolInf.Lister()

	_, _ = svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.enqueueObj(kindService, obj) },
		UpdateFunc: func(_, obj any) { c.enqueueObj(kindService, obj) },
		DeleteFunc: func(obj any) { c.enqueueObj(kindService, obj) },
	})
	_, _ = poolInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueueObj(kindPool, obj) },
		UpdateFunc: func(old, obj any) {
			o, n := old.(*heraldv1.IPPool), obj.(*heraldv1.IPPool)
			// Our own status writes come back as updates; only spec,
			// deletion and finalizer changes matter.
			if o.Generation != n.Generation || (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil) || !slices.Equal(o.Finalizers, n.Finalizers) {
				c.enqueueObj(kindPool, obj)
			}
		},
		DeleteFunc: func(obj any) { c.enqueueObj(kindPool, obj) },
	})
	peerInf := c.heraldFactory.Herald().V1alpha1().BGPPeers()
	speakerInf := c.heraldFactory.Herald().V1alpha1().Speakers()
	c.peers, c.speakers = peerInf.Lister(), speakerInf.Lister()
	_, _ = peerInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueueObj(kindPeer, obj) },
		UpdateFunc: func(old, obj any) {
			if old.(*heraldv1.BGPPeer).Generation != obj.(*heraldv1.BGPPeer).Generation {
				c.enqueueObj(kindPeer, obj)
			}
		},
	})
	// Speakers report their sessions; every BGPPeer's status sums them.
	allPeers := func(any) {
		peers, _ := c.peers.List(labels.Everything())
		for _, p := range peers {
			c.queue.AddAfter(item{kind: kindPeer, key: p.Name}, c.cfg.PoolStatusDelay)
		}
	}
	_, _ = speakerInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: allPeers, UpdateFunc: func(_, obj any) { allPeers(obj) }, DeleteFunc: allPeers,
	})
	_, _ = nsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, obj any) {
			o, n := old.(*corev1.Namespace), obj.(*corev1.Namespace)
			if !labels.Equals(o.Labels, n.Labels) {
				c.enqueueNamespace(n.Name)
			}
		},
	})
	return c
}

func (c *Controller) enqueueObj(kind itemKind, obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		c.log.Error("computing key", "err", err)
		return
	}
	c.queue.Add(item{kind: kind, key: key})
}

func (c *Controller) enqueueNamespace(ns string) {
	svcs, _ := c.svcs.Services(ns).List(labels.Everything())
	for _, s := range svcs {
		c.queue.Add(item{kind: kindService, key: s.Namespace + "/" + s.Name})
	}
}

// Ready reports nil once existing assignments are restored and workers run.
func (c *Controller) Ready() error {
	if !c.ready.Load() {
		return errors.New("restoring existing assignments")
	}
	return nil
}

// Run starts the informers, restores existing assignments, then reconciles
// until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	c.kubeFactory.Start(ctx.Done())
	c.heraldFactory.Start(ctx.Done())
	defer c.kubeFactory.Shutdown()
	defer c.heraldFactory.Shutdown()
	if err := k8s.WaitForSync(ctx, c.kubeFactory, c.heraldFactory); err != nil {
		return err
	}
	start := time.Now()
	n, err := c.restore()
	if err != nil {
		return err
	}
	c.log.Info("restored existing assignments", "services", n, "took", time.Since(start).String())
	c.enqueueAll()
	c.ready.Store(true)

	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Go(func() {
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for c.processNext(ctx) {
				}
			}, time.Second)
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// restore replays every existing Service status into the allocator before
// any new address is handed out. Older Services go first, so when two
// Services claim one address (a state left by some other tool), the older
// keeps it and the newer is given a new one by its first sync.
func (c *Controller) restore() (int, error) {
	svcs, err := c.svcs.List(labels.Everything())
	if err != nil {
		return 0, fmt.Errorf("listing services: %w", err)
	}
	slices.SortFunc(svcs, func(a, b *corev1.Service) int {
		if d := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); d != 0 {
			return d
		}
		return cmp.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setPoolsLocked()
	n := 0
	for _, svc := range svcs {
		addrs := statusAddrs(svc)
		if !c.cfg.Class.Handles(svc) || len(addrs) == 0 {
			continue
		}
		req, _ := serviceRequest(svc, c.nsLabels(svc.Namespace)) // a bad annotation does not void an existing address
		pool, err := c.alloc.Restore(req, addrs, svc.Annotations[k8s.AnnotationPoolAllocated])
		if err != nil {
			c.log.Warn("existing address conflicts with an older Service; this one gets a new address", "service", req.Key, "ip", addrs, "err", err)
			c.cfg.Recorder.Eventf(svc, corev1.EventTypeWarning, EventAllocationFailed, "Duplicate: %v; a new address will be assigned", err)
			continue
		}
		if pool == "" {
			c.log.Warn("existing address lies in no IPPool; kept, but speakers do not announce it", "service", req.Key, "ip", addrs)
		}
		n++
	}
	// Then externalIPs: after the load balancers' addresses, which are
	// facts in status, and before any new allocation could take one.
	for _, svc := range svcs {
		if ext := c.externalIPsOf(svc); len(ext) > 0 {
			// The Service's first sync (every Service is queued after
			// restore) tries again and records the Event; the log says
			// it was already refused at start.
			if _, err := c.alloc.UseExternalIPs(svc.Namespace+"/"+svc.Name, ext); err != nil {
				c.log.Warn("externalIPs refused while restoring", "service", svc.Namespace+"/"+svc.Name, "err", err)
			}
		}
	}
	return n, nil
}

func (c *Controller) nsLabels(ns string) map[string]string {
	if n, err := c.nss.Get(ns); err == nil {
		return n.Labels
	}
	return nil
}

// setPoolsLocked hands the current IPPools to the allocator.
func (c *Controller) setPoolsLocked() map[string]allocator.PoolState {
	pools, _ := c.pools.List(labels.Everything())
	cfgs := make([]allocator.PoolConfig, 0, len(pools))
	for _, p := range pools {
		cfgs = append(cfgs, poolConfig(p))
	}
	return c.alloc.SetPools(cfgs)
}

func (c *Controller) enqueueAll() {
	pools, _ := c.pools.List(labels.Everything())
	for _, p := range pools {
		c.queue.Add(item{kind: kindPool, key: p.Name})
	}
	svcs, _ := c.svcs.List(labels.Everything())
	for _, s := range svcs {
		c.queue.Add(item{kind: kindService, key: s.Namespace + "/" + s.Name})
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	it, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(it)
	start := time.Now()
	var err error
	switch it.kind {
	case kindService:
		err = c.syncService(ctx, it.key)
		c.m.syncs.WithLabelValues("service").Observe(time.Since(start).Seconds())
	case kindPool:
		err = c.syncPool(ctx, it.key)
		c.m.syncs.WithLabelValues("pool").Observe(time.Since(start).Seconds())
	case kindPeer:
		err = c.syncPeer(ctx, it.key)
		c.m.syncs.WithLabelValues("bgppeer").Observe(time.Since(start).Seconds())
	}
	if err != nil {
		// A conflict means our cache was behind our own last write; the
		// retry reads the fresh object. Anything else deserves attention.
		lvl := slog.LevelWarn
		if isConflict(err) {
			lvl = slog.LevelDebug
		}
		c.log.Log(ctx, lvl, "sync failed; retrying", "key", it.key, "err", err)
		c.queue.AddRateLimited(it)
		return true
	}
	c.queue.Forget(it)
	return true
}

// retryPending re-enqueues Services waiting for an address; called with mu
// held after something freed addresses or changed pools.
func (c *Controller) retryPendingLocked() {
	for key := range c.pending {
		c.queue.Add(item{kind: kindService, key: key})
	}
}

func (c *Controller) poolChanged(names ...string) {
	for _, n := range names {
		if n != "" {
			c.queue.AddAfter(item{kind: kindPool, key: n}, c.cfg.PoolStatusDelay)
		}
	}
}

// isConflict reports errors that a fresh read and retry will fix.
func isConflict(err error) bool { return apierrors.IsConflict(err) }
