package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/bgp"
	"github.com/heraldlb/herald/internal/bgpplan"
	"github.com/heraldlb/herald/internal/cli"
	"github.com/heraldlb/herald/internal/cpvip"
	"github.com/heraldlb/herald/internal/health"
	"github.com/heraldlb/herald/internal/layer2"
	"github.com/heraldlb/herald/internal/localaddr"
	"github.com/heraldlb/herald/internal/memberkey"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/metricsserver"
	"github.com/heraldlb/herald/internal/privilege"
)

// defaultAPIServerPort is kube-apiserver's (kubeadm's) secure port.
const defaultAPIServerPort = 6443

// cpFlags are the flags of `herald-speaker control-plane`.
type cpFlags struct {
	common        cli.Common
	nodeName      string
	vips          []netip.Addr
	iface         string
	bindAddr      netip.Addr
	peers         []netip.AddrPort
	ml            memberlistFlags
	apiserverURL  string
	caFile        string
	checkInterval time.Duration
	checkTimeout  time.Duration
	metricsAddr   string
	runAs         string
	// BGP instead of ARP/NDP, when bgpPeers is set.
	bgpPeers    []netip.AddrPort
	bgpASN      uint32
	bgpPeerASN  uint32
	bgpHold     time.Duration
	bgpRouterID netip.Addr
}

func parseControlPlane(args []string) *cpFlags {
	f := &cpFlags{}
	var vips, peers, bind, bgpPeers, routerID string
	var asn, peerASN uint64
	fs := flag.NewFlagSet("herald-speaker control-plane", flag.ExitOnError)
	f.common.RegisterLocal(fs)
	fs.StringVar(&f.nodeName, "node-name", "", "this node's name in the control-plane cluster (default: $NODE_NAME, else the host name)")
	fs.StringVar(&vips, "vip", "", "the API server's virtual address: one IPv4 and/or one IPv6 address, comma-separated (required)")
	fs.StringVar(&f.iface, "interface", "", "interface to answer ARP/NDP on (default: the one whose subnet holds the VIP, else the default route's)")
	fs.StringVar(&bind, "bind-addr", "", "this node's address: memberlist binds it and its kube-apiserver is checked there (default: the address in --peers that is this node's)")
	fs.StringVar(&peers, "peers", "", "the control-plane nodes' addresses, ADDR or ADDR:PORT, comma-separated (this node's own is ignored)")
	f.ml.register(fs, cpvip.DefaultPort, "memberlist TCP and UDP port (not the Service speakers' one)",
		"file holding the memberlist keys, base64 of 16, 24 or 32 bytes each, the first encrypting; required unless --memberlist-insecure")
	fs.StringVar(&f.apiserverURL, "apiserver-url", "", "this node's kube-apiserver readiness URL (default https://BIND-ADDR:6443/readyz)")
	fs.StringVar(&f.caFile, "apiserver-ca-file", cpvip.KubeadmCAFile, "CA that signed the API server's serving certificate")
	fs.DurationVar(&f.checkInterval, "check-interval", cpvip.DefaultCheckInterval, "how often the local kube-apiserver's /readyz is checked")
	fs.DurationVar(&f.checkTimeout, "check-timeout", cpvip.DefaultCheckTimeout, "how long one check may take before it counts as failed")
	fs.StringVar(&f.metricsAddr, "metrics-addr", fmt.Sprintf(":%d", cpvip.DefaultMetricsPort), "address serving /metrics, /healthz and /readyz")
	fs.StringVar(&f.runAs, "run-as", "65532:65532", "uid:gid a speaker started as root switches to, keeping only CAP_NET_RAW and CAP_NET_ADMIN; empty: stay as started")
	fs.StringVar(&bgpPeers, "bgp-peers", "", "routers to announce the VIP to over BGP, ADDR or ADDR:PORT, comma-separated: every node whose API server is ready announces it (ECMP), instead of ARP/NDP from one node")
	fs.Uint64Var(&asn, "bgp-asn", 0, "this node's AS number (required with --bgp-peers)")
	fs.Uint64Var(&peerASN, "bgp-peer-asn", 0, "the routers' AS number (default: --bgp-asn, iBGP)")
	fs.DurationVar(&f.bgpHold, "bgp-hold-time", 90*time.Second, "BGP hold time proposed to the routers: how long a router keeps the route of a node that went silent")
	fs.StringVar(&routerID, "bgp-router-id", "", "BGP identifier, an IPv4 address (default: --bind-addr when it is IPv4)")
	cli.Parse(fs, &f.common, args, func() error {
		var err error
		if f.vips, err = cpvip.ParseVIPs(vips); err != nil {
			return fmt.Errorf("--vip: %w", err)
		}
		if f.peers, err = cpvip.ParsePeers(peers, f.ml.port); err != nil {
			return fmt.Errorf("--peers: %w", err)
		}
		if bind == "" {
			if f.bindAddr, err = cpvip.ChooseBind(f.peers, localAddrs()); err != nil {
				return err
			}
		} else if f.bindAddr, err = netip.ParseAddr(bind); err != nil {
			return fmt.Errorf("--bind-addr %q is not an IP address", bind)
		}
		f.bindAddr = f.bindAddr.Unmap()
		if err := cpvip.CheckPeers(f.peers, f.bindAddr, f.ml.port); err != nil {
			return fmt.Errorf("--peers: %w", err)
		}
		if f.nodeName == "" {
			f.nodeName = os.Getenv("NODE_NAME")
		}
		if f.nodeName == "" {
			f.nodeName, _ = os.Hostname()
		}
		switch {
		case f.nodeName == "":
			return errors.New("--node-name is empty and there is no host name")
		case f.checkInterval <= 0 || f.checkTimeout <= 0:
			return errors.New("--check-interval and --check-timeout must be positive")
		}
		if err := f.ml.validate(); err != nil {
			return err
		}
		if f.iface != "" {
			if _, err := net.InterfaceByName(f.iface); err != nil {
				return fmt.Errorf("--interface %s: %w", f.iface, err)
			}
		}
		if _, _, err := parseRunAs(f.runAs); err != nil {
			return err
		}
		if err := f.parseBGP(bgpPeers, routerID, asn, peerASN); err != nil {
			return err
		}
		if f.apiserverURL == "" {
			f.apiserverURL = "https://" + net.JoinHostPort(f.bindAddr.String(), fmt.Sprint(defaultAPIServerPort)) + "/readyz"
		}
		if u, err := url.Parse(f.apiserverURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("--apiserver-url %q: want https://HOST:PORT/readyz", f.apiserverURL)
		}
		return cpvip.CheckSettings(f.vips, f.bindAddr, f.ml.port, membership.DefaultPort)
	})
	return f
}

// parseBGP reads the BGP flags: with --bgp-peers, the VIPs are routed.
// The next hop of a VIP is this node's address, so each VIP must be of
// --bind-addr's family.
func (f *cpFlags) parseBGP(peers, routerID string, asn, peerASN uint64) error {
	var err error
	if f.bgpPeers, err = cpvip.ParsePeers(peers, bgpplan.DefaultPort); err != nil {
		return fmt.Errorf("--bgp-peers: %w", err)
	}
	if len(f.bgpPeers) == 0 {
		if asn != 0 || peerASN != 0 || routerID != "" {
			return errors.New("--bgp-asn, --bgp-peer-asn and --bgp-router-id need --bgp-peers")
		}
		return nil
	}
	switch {
	case asn == 0 || asn > math.MaxUint32:
		return fmt.Errorf("--bgp-asn %d: want 1 to %d (required with --bgp-peers)", asn, uint64(math.MaxUint32))
	case peerASN > math.MaxUint32:
		return fmt.Errorf("--bgp-peer-asn %d: want 1 to %d", peerASN, uint64(math.MaxUint32))
	case f.iface != "":
		return errors.New("--interface is for ARP/NDP; with --bgp-peers the VIP is routed")
	case f.bgpHold != 0 && f.bgpHold < 3*time.Second:
		return fmt.Errorf("--bgp-hold-time %v: BGP allows 0 or at least 3s", f.bgpHold)
	}
	f.bgpASN, f.bgpPeerASN = uint32(asn), uint32(peerASN)
	if f.bgpPeerASN == 0 {
		f.bgpPeerASN = f.bgpASN
	}
	switch {
	case routerID != "":
		if f.bgpRouterID, err = netip.ParseAddr(routerID); err != nil || !f.bgpRouterID.Is4() {
			return fmt.Errorf("--bgp-router-id %q is not an IPv4 address", routerID)
		}
	case f.bindAddr.Is4():
		f.bgpRouterID = f.bindAddr
	default:
		return errors.New("--bgp-router-id is required: --bind-addr is not IPv4")
	}
	for _, v := range f.vips {
		if v.Is4() != f.bindAddr.Is4() {
			return fmt.Errorf("VIP %s: with BGP, each VIP's next hop is --bind-addr %s, of the other family; run one speaker per family", v, f.bindAddr)
		}
	}
	return nil
}

// keyFileInterval paces the key file checks: a rotation is a rare,
// operator-paced event.
const keyFileInterval = 5 * time.Second

// watchKeyFile re-reads the key file every interval and hands a changed
// key list to set (membership.SetKeys, which moves the keyring in the order
// that keeps every member able to read every other). So a key is replaced
// by replacing the file on every control-plane node, in any order, without
// a restart. A file that cannot be read or parsed changes nothing.
func watchKeyFile(ctx context.Context, path string, interval time.Duration, current [][]byte, set func([][]byte) error, log *slog.Logger) {
	last := memberkey.Fingerprints(current)
	lastErr := ""
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		keys, err := readKeys(path)
		if err != nil {
			// Once per distinct error: a file the speaker (uid 65532
			// after start) may not read would otherwise log every tick.
			if err.Error() != lastErr {
				log.Warn("key file unusable; keeping the keys in use", "err", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
		fps := memberkey.Fingerprints(keys)
		if slices.Equal(fps, last) {
			continue
		}
		if err := set(keys); err != nil {
			log.Error("applying the new keys", "err", err)
			continue
		}
		log.Info("memberlist keys changed in the key file", "keys", fps)
		last = fps
	}
}

// localAddrs are this host's interface addresses.
func localAddrs() []netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// runControlPlane is `herald-speaker control-plane`: it needs no API
// server, so it runs as a static Pod and moves the VIP while every API
// server is down.
func runControlPlane(args []string) int {
	f := parseControlPlane(args)
	log := f.common.Logger(os.Stderr, "herald-speaker").With("node", f.nodeName, "mode", "control-plane")
	cli.LogStart(log)
	// Secrets first, while still root: the key file and the CA may be
	// readable by root only.
	keys, err := f.ml.keys()
	if err != nil {
		log.Error("speaker stopped", "err", err)
		return 1
	}
	readyz, err := health.Readyz(f.apiserverURL, f.caFile)
	if err != nil {
		log.Error("speaker stopped", "err", err)
		return 1
	}
	// A node whose own link is down stands aside at once: its API server
	// cannot serve the VIP, and holding on would make it announce the VIP
	// afresh the moment the link returns.
	linkUp := health.LinkUpFor(f.bindAddr)
	check := func(ctx context.Context) error {
		if up, err := linkUp(); err != nil {
			return fmt.Errorf("%w: checking the interface holding %s: %v", cpvip.ErrCutOff, f.bindAddr, err)
		} else if !up {
			return fmt.Errorf("%w: the interface holding %s is down", cpvip.ErrCutOff, f.bindAddr)
		}
		return readyz(ctx)
	}
	// NET_ADMIN makes the VIP local; NET_RAW answers ARP and NDP.
	dropPrivileges(f.runAs, privilege.Of(unix.CAP_NET_RAW, unix.CAP_NET_ADMIN), "the VIP needs CAP_NET_ADMIN and CAP_NET_RAW", log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serveControlPlane(ctx, f, keys, check, log); err != nil {
		log.Error("speaker stopped", "err", err)
		return 1
	}
	return 0
}

func serveControlPlane(ctx context.Context, f *cpFlags, keys [][]byte, check func(context.Context) error, log *slog.Logger) error {
	members, err := membership.Start(ctx, f.ml.config(f.nodeName, f.bindAddr, keys, log))
	if err != nil {
		return err
	}
	defer func() { _ = members.Shutdown() }()
	members.SetPeers(f.peers)
	if keys != nil {
		go watchKeyFile(ctx, f.ml.keyFile, keyFileInterval, keys, members.SetKeys, log.With("source", "keys"))
	}

	reg := metricsserver.NewRegistry()
	p, err := assembleControlPlane(f, members, check, reg, log)
	if err != nil {
		return err
	}
	go func() {
		if err := metricsserver.Serve(ctx, f.metricsAddr, reg, func() error { return nil }, false, log); err != nil {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	// The announcer outlives ctx, so that the VIP is answered until the
	// keeper has handed it over.
	annCtx, annCancel := context.WithCancel(context.Background())
	defer annCancel()
	annDone := make(chan error, 1)
	mode := "layer2"
	if p.bgp != nil {
		mode = "bgp"
		go func() { annDone <- p.bgp.Run(annCtx) }()
		if err := p.bgp.SetPeers(ctx, netip.Addr{}, f.bgpPeerList()); err != nil {
			annCancel()
			return errors.Join(fmt.Errorf("configuring BGP peers: %w", err), <-annDone)
		}
	} else {
		go func() { annDone <- p.l2.Run(annCtx) }()
	}
	log.Info("control-plane speaker running", "vips", fmt.Sprint(f.vips), "bind", f.bindAddr.String(), "port", f.ml.port,
		"peers", len(f.peers), "apiserver", f.apiserverURL, "announce", mode, "encrypted", keys != nil)
	// An announcer that stops on its own (its first netlink watch failed)
	// leaves the VIP unanswered: stop too, so that the kubelet restarts
	// the Pod and the others take over meanwhile.
	keeperCtx, stopKeeper := context.WithCancel(ctx)
	defer stopKeeper()
	keeperDone := make(chan error, 1)
	go func() { keeperDone <- p.keeper.Run(keeperCtx) }()
	var annErr error
	annStopped := false
	select {
	case err = <-keeperDone:
	case annErr = <-annDone:
		annStopped = true
		log.Error(mode+" announcer stopped; stopping", "err", annErr)
		stopKeeper()
		err = <-keeperDone
		if annErr == nil {
			annErr = errors.New(mode + " announcer stopped")
		}
	}
	if lerr := members.Leave(time.Second); lerr != nil {
		log.Warn("leaving memberlist", "err", lerr)
	}
	annCancel()
	if !annStopped {
		if aerr := <-annDone; aerr != nil {
			log.Error(mode+" announcer stopped", "err", aerr)
		}
	}
	return errors.Join(err, annErr)
}

// cpParts are the control-plane mode's parts, not started.
type cpParts struct {
	l2     *layer2.Announcer // nil with BGP
	bgp    *bgp.Announcer    // nil without BGP
	keeper *cpvip.Keeper
}

// assembleControlPlane builds the control-plane mode's parts; every
// metric the mode exports is registered here (the metrics documentation
// is checked against it).
func assembleControlPlane(f *cpFlags, members cpvip.Membership, check func(context.Context) error, reg prometheus.Registerer, log *slog.Logger) (*cpParts, error) {
	p := &cpParts{}
	local := localaddr.Addrs{Addrs: f.vips}
	var ann cpvip.Announcer
	if len(f.bgpPeers) > 0 {
		cfg := bgp.Config{RouterID: f.bgpRouterID, Log: log.With("source", "bgp"), Registry: reg}
		if f.bindAddr.Is4() {
			cfg.NextHopV4 = f.bindAddr
		} else {
			cfg.NextHopV6 = f.bindAddr
		}
		var err error
		if p.bgp, err = bgp.New(cfg); err != nil {
			return nil, err
		}
		ann = &bgpVIPAnnouncer{local: local, bgp: p.bgp, vips: f.vips}
	} else {
		p.l2 = layer2.New(layer2.Config{Log: log.With("source", "layer2"), Registry: reg, OnConflict: func(addr netip.Addr, iface string, mac net.HardwareAddr) {
			log.Warn("another host answers for the VIP", "vip", addr, "interface", iface, "mac", mac.String())
			// Set below, before the announcer runs.
			p.keeper.Conflict()
		}})
		ann = &vipAnnouncer{local: local, l2: p.l2, vips: f.vips, iface: f.iface, log: log}
	}
	var err error
	p.keeper, err = cpvip.New(cpvip.Config{
		Node: f.nodeName, Key: f.vips[0], Membership: members, Announcer: ann, Check: check, EveryReady: p.bgp != nil,
		Interval: f.checkInterval, Timeout: f.checkTimeout, Log: log, Registry: reg,
	})
	return p, err
}

// bgpPeerList is --bgp-peers as the BGP announcer takes them.
func (f *cpFlags) bgpPeerList() []bgp.Peer {
	out := make([]bgp.Peer, 0, len(f.bgpPeers))
	for _, a := range f.bgpPeers {
		out = append(out, bgp.Peer{Name: "router-" + a.String(), MyASN: f.bgpASN, PeerASN: f.bgpPeerASN,
			Address: a.Addr(), Port: a.Port(), HoldTime: f.bgpHold})
	}
	return out
}

// bgpVIPAnnouncer makes the VIPs local and routes them to this node.
type bgpVIPAnnouncer struct {
	local localaddr.Addrs
	bgp   *bgp.Announcer
	vips  []netip.Addr
}

func (a *bgpVIPAnnouncer) Hold(ctx context.Context, hold bool) error {
	if !hold {
		// Withdraw first: routers must stop sending before the address
		// stops being accepted.
		return errors.Join(a.bgp.SetPaths(ctx, nil), a.local.Remove())
	}
	if err := a.local.Add(); err != nil {
		return err
	}
	paths := make([]bgp.Path, 0, len(a.vips))
	for _, v := range a.vips {
		paths = append(paths, bgp.Path{Prefix: netip.PrefixFrom(v, v.BitLen())})
	}
	return a.bgp.SetPaths(ctx, paths)
}

// Reannounce does nothing: routers keep what a session was given.
func (a *bgpVIPAnnouncer) Reannounce() {}

// vipAnnouncer makes the VIPs local (so kube-apiserver, listening on the
// node, accepts them) and answers ARP/NDP for them.
type vipAnnouncer struct {
	local localaddr.Addrs
	l2    *layer2.Announcer
	vips  []netip.Addr
	iface string
	log   *slog.Logger
}

func (a *vipAnnouncer) Reannounce() { a.l2.Reannounce(a.vips...) }

func (a *vipAnnouncer) Hold(ctx context.Context, hold bool) error {
	if !hold {
		// Stop answering before the address goes: a node must not claim
		// an address it no longer accepts.
		l2err := a.l2.Set(ctx, nil)
		return errors.Join(l2err, a.local.Remove())
	}
	if err := a.local.Add(); err != nil {
		return err
	}
	var targets []layer2.Target
	for _, v := range a.vips {
		t := layer2.Target{Addr: v, Service: "control-plane VIP"}
		if a.iface != "" {
			t.Interfaces = []string{a.iface}
		}
		targets = append(targets, t)
	}
	// The announcer retries addresses it cannot answer for yet (a link
	// coming up) by itself; the VIP is held meanwhile.
	if err := a.l2.Set(ctx, targets); err != nil {
		a.log.Warn("VIP not answered on every interface yet", "err", err)
	}
	return nil
}
