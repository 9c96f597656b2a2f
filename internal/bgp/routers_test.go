package bgp

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
	"k8s.io/apimachinery/pkg/util/wait"
)

// The tests run herald's Announcer against GoBGP "routers" in the same
// process, on loopback: a router listens on a free high port with a
// passive neighbour for herald (herald's server never listens), herald
// dials it. Two routers on one host need two addresses because GoBGP keys
// neighbours by address; 127.0.0.2 is on lo on Linux without setup.

const (
	heraldAddr = "127.0.0.1"
	heraldID   = "10.0.0.1"
	waitLimit  = 30 * time.Second
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("BGP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// waitFor polls cond every 20 ms until it holds or waitLimit passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, waitLimit, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

type router struct {
	t    testing.TB
	srv  *server.BgpServer
	addr netip.Addr
	port uint16
	asn  uint32
	stop sync.Once
}

type routerNeighbor struct {
	addr     string // herald's source address
	asn      uint32 // herald's MyASN
	password string
	holdTime uint64 // seconds proposed to herald; 0 = GoBGP's 90
}

func freePort(t testing.TB, addr string) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return uint16(port)
}

// newRouter starts a GoBGP router listening on addr:<free port> with
// passive neighbours.
func newRouter(t testing.TB, addr string, asn uint32, id string, neighbors ...routerNeighbor) *router {
	t.Helper()
	return newRouterAt(t, addr, freePort(t, addr), asn, id, neighbors...)
}

// newRouterAt is newRouter on a given port, e.g. to replace a stopped
// router with another behind the same address and port.
func newRouterAt(t testing.TB, addr string, port uint16, asn uint32, id string, neighbors ...routerNeighbor) *router {
	t.Helper()
	r := &router{t: t, addr: netip.MustParseAddr(addr), port: port, asn: asn}
	log := testLogger(t)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r.srv = server.NewBgpServer(server.LoggerOption(newSlogAdapter(log.With("router", addr))))
	go r.srv.Serve()
	ctx := context.Background()
	if err := r.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: id, ListenPort: int32(r.port), ListenAddresses: []string{addr},
	}}); err != nil {
		t.Fatalf("starting router %s: %v", addr, err)
	}
	t.Cleanup(r.Stop)
	for _, n := range neighbors {
		p := &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: n.addr, PeerAsn: n.asn, AuthPassword: n.password},
			Transport: &api.Transport{PassiveMode: true},
			Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: n.holdTime}},
		}
		for _, f := range []*api.Family{familyV4, familyV6} {
			p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f, Enabled: true}})
		}
		if err := r.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
			t.Fatalf("router %s: adding neighbour %s: %v", addr, n.addr, err)
		}
	}
	return r
}

func (r *router) Stop() {
	r.stop.Do(func() { _ = r.srv.StopBgp(context.Background(), &api.StopBgpRequest{}) })
}

// peer is herald's Peer for this router.
func (r *router) peer(name string, myASN uint32) Peer {
	return Peer{
		Name: name, MyASN: myASN, PeerASN: r.asn,
		Address: r.addr, Port: r.port, SourceAddress: netip.MustParseAddr(heraldAddr),
		ConnectTime: time.Second,
	}
}

// received is what the router holds for one prefix.
type received struct {
	NextHop     netip.Addr
	ASPath      []uint32
	Communities []uint32
	Large       []LargeCommunity
	LocalPref   *uint32
}

// rib returns the router's global RIB for one family.
func (r *router) rib(v6 bool) map[netip.Prefix]received {
	r.t.Helper()
	fam := familyV4
	if v6 {
		fam = familyV6
	}
	out := map[netip.Prefix]received{}
	err := r.srv.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam},
		func(d *api.Destination) {
			for _, p := range d.Paths {
				if !p.Best {
					continue
				}
				out[netip.MustParsePrefix(d.Prefix)] = decodePath(r.t, p)
			}
		})
	if err != nil {
		r.t.Fatalf("router %s: listing paths: %v", r.addr, err)
	}
	return out
}

// count is the number of destinations in the router's table for a family.
func (r *router) count(v6 bool) int {
	fam := familyV4
	if v6 {
		fam = familyV6
	}
	t, err := r.srv.GetTable(context.Background(), &api.GetTableRequest{TableType: api.TableType_GLOBAL, Family: fam})
	if err != nil {
		return -1
	}
	return int(t.NumDestination)
}

// neighbor returns the router's view of its session with herald.
func (r *router) neighbor() *api.Peer {
	r.t.Helper()
	var out *api.Peer
	if err := r.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) { out = p }); err != nil {
		r.t.Fatalf("router %s: listing peers: %v", r.addr, err)
	}
	return out
}

func (r *router) established() bool {
	p := r.neighbor()
	return p != nil && p.GetState().GetSessionState() == api.PeerState_ESTABLISHED
}

func (r *router) updatesReceived() uint64 {
	return r.neighbor().GetState().GetMessages().GetReceived().GetUpdate()
}

func decodePath(t testing.TB, p *api.Path) received {
	t.Helper()
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		t.Fatalf("decoding path attributes: %v", err)
	}
	var out received
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			out.NextHop, _ = netip.AddrFromSlice(a.Value.To4())
		case *bgp.PathAttributeMpReachNLRI:
			out.NextHop, _ = netip.AddrFromSlice(a.Nexthop)
		case *bgp.PathAttributeAsPath:
			for _, seg := range a.Value {
				out.ASPath = append(out.ASPath, seg.GetAS()...)
			}
		case *bgp.PathAttributeCommunities:
			out.Communities = a.Value
		case *bgp.PathAttributeLargeCommunities:
			for _, c := range a.Values {
				out.Large = append(out.Large, LargeCommunity{Global: c.ASN, Local1: c.LocalData1, Local2: c.LocalData2})
			}
		case *bgp.PathAttributeLocalPref:
			v := a.Value
			out.LocalPref = &v
		}
	}
	return out
}

// events records OnSessionChange calls.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) record(peer string, up bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, peer+"="+strconv.FormatBool(up))
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.log...)
}

// startHerald creates an Announcer and runs it until the test ends.
func startHerald(t testing.TB, cfg Config) *Announcer {
	t.Helper()
	if cfg.RouterID == (netip.Addr{}) {
		cfg.RouterID = netip.MustParseAddr(heraldID)
	}
	if cfg.Log == nil {
		cfg.Log = testLogger(t)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return a
}

func sessionUp(a *Announcer, name string) bool { return a.Sessions()[name].Up }

func u32(v uint32) *uint32 { return &v }
