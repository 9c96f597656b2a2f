package main

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	"github.com/heraldlb/herald/internal/bgp"
	"github.com/heraldlb/herald/internal/bgpplan"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/health"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/layer2"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/plan"
	"github.com/heraldlb/herald/internal/speaker"
)

// assembly is what the speaker's components are built from.
type assembly struct {
	node      string
	nodeUID   types.UID // owns this node's Speaker object
	port      int       // memberlist
	class     k8s.Class
	namespace string // herald's own, where BGP password Secrets live
	kube      kubernetes.Interface
	herald    versioned.Interface
	members   interface {
		speaker.Membership
		speaker.Members
		Keyring() membership.Keyring
	}
	recorder record.EventRecorder
	log      *slog.Logger
	registry prometheus.Registerer
	// v4 and v6 are the node's first InternalIPs: the BGP router ID and
	// next hops. Without either the node runs layer 2 only (and reads no
	// Secrets); with IPv6 only, BGP carries IPv6 only.
	v4, v6       netip.Addr
	kubeProxyURL string
	linkUp       func() (bool, error)
	// interfacesDown judges the interfaces layer-2 pools name.
	interfacesDown func(names []string) ([]string, error)
	// snapshot is the one saved on the node (nil: none); snapshotPath
	// where to save the next ("": nowhere).
	snapshot     *speaker.Snapshot
	snapshotPath string
	// offline: the API server did not answer at start; the speaker
	// decides from the snapshot at once instead of waiting for its
	// caches first.
	offline bool
}

// components are the speaker's parts, not started.
type components struct {
	l2      *layer2.Announcer
	bgp     *bgp.Announcer // nil without BGP
	speaker *speaker.Speaker
	health  *health.Health
}

// assemble builds the components in the order they report to each other:
// what reports Events first, the announcers that report to it next, the
// speaker last. Every metric the speaker exports is registered here (the
// metrics documentation is checked against it).
func assemble(a assembly) (*components, error) {
	c := &components{}
	informers := speaker.NewInformers(a.kube, a.herald, a.namespace, a.v4.IsValid() || a.v6.IsValid())
	reporter := speaker.NewReporter(speaker.ReporterConfig{
		NodeName: a.node, NodeUID: a.nodeUID, Recorder: a.recorder, Objects: informers, Herald: a.herald, Members: a.members, Keys: a.members, Log: a.log,
		// c.bgp is set below, before anything runs.
		SessionReasons: func() map[string]string {
			if c.bgp == nil {
				return nil
			}
			return c.bgp.SessionReasons()
		},
	})
	c.l2 = layer2.New(layer2.Config{Log: a.log.With("source", "layer2"), Registry: a.registry, OnConflict: reporter.Conflict})
	c.health = &health.Health{KubeProxyURL: a.kubeProxyURL, LinkUp: a.linkUp, InterfacesDown: a.interfacesDown, Log: a.log}
	c.health.Register(a.registry)
	spCfg := speaker.Config{
		NodeName: a.node, MemberlistPort: a.port, Informers: informers, Class: a.class,
		Membership: a.members, L2: l2Adapter{c.l2}, Reporter: reporter, Log: a.log, Registry: a.registry,
		WatchInterfaces: c.health.SetWatched, Snapshot: a.snapshot, SnapshotPath: a.snapshotPath,
	}
	if a.offline {
		spCfg.SnapshotWait = time.Millisecond
	}
	if a.v4.IsValid() || a.v6.IsValid() {
		// Router ID and next hops are this node's InternalIPs, so routers
		// reach the node itself (ECMP over every node).
		rid := a.v4
		if !rid.IsValid() {
			rid = bgpplan.DerivedRouterID(a.v6, a.node)
		}
		var err error
		c.bgp, err = bgp.New(bgp.Config{
			RouterID: rid, NextHopV4: a.v4, NextHopV6: a.v6, NoIPv4: !a.v4.IsValid(), Log: a.log.With("source", "bgp"), Registry: a.registry,
			OnSessionChange: reporter.SessionChanged, OnPeerRefused: reporter.PeerRefused,
		})
		if err != nil {
			return nil, err
		}
		spCfg.BGP = c.bgp
	}
	c.speaker = speaker.New(spCfg)
	return c, nil
}

// l2Adapter feeds the speaker's decisions to the layer-2 announcer.
type l2Adapter struct{ a *layer2.Announcer }

func (l l2Adapter) Set(ctx context.Context, want []plan.L2Announcement) error {
	targets := make([]layer2.Target, 0, len(want))
	for _, w := range want {
		t := layer2.Target{Addr: w.Addr, Interfaces: w.Interfaces}
		if len(w.Services) > 0 {
			t.Service = w.Services[0]
		}
		targets = append(targets, t)
	}
	return l.a.Set(ctx, targets)
}
