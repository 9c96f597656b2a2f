package speaker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/testcluster"
)

type testNode struct {
	name    string
	addr    netip.Addr
	members *membership.Cluster
	l2      *recordingL2
	cancel  context.CancelFunc
	done    chan struct{}
}

// freeUDPPort finds a port free for TCP and UDP on every test address.
func freePort(t *testing.T, addrs []netip.Addr) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", addrs[0].String()+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		ok := true
		for _, a := range addrs {
			u, err := net.ListenPacket("udp", netip.AddrPortFrom(a, uint16(port)).String())
			if err != nil {
				ok = false
				break
			}
			_ = u.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func startNode(t *testing.T, kube kubernetes.Interface, herald versioned.Interface, name string, addr netip.Addr, port int) *testNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	members, err := membership.Start(ctx, membership.Config{NodeName: name, BindAddr: addr, Port: port})
	if err != nil {
		t.Fatalf("starting memberlist for %s: %v", name, err)
	}
	if err := members.SetHealthy(ctx, true); err != nil {
		t.Fatal(err)
	}
	n := &testNode{name: name, addr: addr, members: members, l2: &recordingL2{}, cancel: cancel, done: make(chan struct{})}
	inf := NewInformers(kube, herald, "herald-system", false)
	sp := New(Config{
		NodeName: name, MemberlistPort: port, Informers: inf,
		Reporter: NewReporter(ReporterConfig{NodeName: name, Objects: inf, Herald: herald, Members: members}),
		Class:    k8s.Class{Name: "herald.dev/lb"}, Membership: members, L2: n.l2,
		HandoverDelay: 500 * time.Millisecond,
	})
	go func() {
		defer close(n.done)
		_ = sp.Run(ctx)
		_ = members.Shutdown()
	}()
	t.Cleanup(func() {
		cancel()
		<-n.done
	})
	return n
}

// owners maps each address to the nodes announcing it over layer 2.
func ownersOf(nodes []*testNode) map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	for _, n := range nodes {
		cur, _ := n.l2.Current()
		for _, a := range cur {
			out[a.Addr] = append(out[a.Addr], n.name)
		}
	}
	return out
}

func waitOwners(t *testing.T, nodes []*testNode, addrs []netip.Addr, ok func(owners []string) bool) map[netip.Addr][]string {
	t.Helper()
	var last map[netip.Addr][]string
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		last = ownersOf(nodes)
		for _, a := range addrs {
			if !ok(last[a]) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("owners never settled: %v", last)
	}
	return last
}

func TestSpeakersElectAndFailOver(t *testing.T) {
	c := testcluster.ForTest(t, testcluster.Options{CRDDir: "../../config/crd/bases"})
	kube := kubernetes.NewForConfigOrDie(c.Config)
	herald := versioned.NewForConfigOrDie(c.Config)
	ctx := context.Background()

	if _, err := herald.HeraldV1alpha1().IPPools().Create(ctx, &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: heraldv1.IPPoolSpec{Addresses: []string{"198.51.100.0/24"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	names := []string{"node-a", "node-b", "node-c"}
	var ips []netip.Addr
	for i, name := range names {
		ip := netip.AddrFrom4([4]byte{127, 0, 0, byte(11 + i)})
		ips = append(ips, ip)
		n, err := kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip.String()}}
		if _, err := kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// 24 Services with addresses (written as the controller would).
	var vips []netip.Addr
	for i := range 24 {
		vip := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)})
		vips = append(vips, vip)
		createLB(t, kube, fmt.Sprintf("s%02d", i), vip, false)
	}
	port := freePort(t, ips)
	var nodes []*testNode
	for i, name := range names[:2] {
		nodes = append(nodes, startNode(t, kube, herald, name, ips[i], port))
	}
	waitOwners(t, nodes, vips, func(o []string) bool { return len(o) == 1 })
	// A speaker joining a running cluster takes its share, not everything:
	// it decides only once it has joined.
	nodes = append(nodes, startNode(t, kube, herald, names[2], ips[2], port))
	most := 0
	// Sampled in real time: the speakers run real memberlist over sockets.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		cur, _ := nodes[2].l2.Current()
		most = max(most, len(cur))
	}
	if most > 13 {
		t.Errorf("joining speaker claimed %d of 24 addresses at once", most)
	}

	// Exactly one owner per address, spread over all three.
	own := waitOwners(t, nodes, vips, func(o []string) bool { return len(o) == 1 })
	count := map[string]int{}
	for _, o := range own {
		count[o[0]]++
	}
	t.Logf("24 addresses over 3 speakers: %v", count)
	for _, n := range names {
		if count[n] < 3 || count[n] > 13 {
			t.Errorf("%s owns %d of 24, want 3–13", n, count[n])
		}
	}

	// Each node reports its announcements in its Speaker object.
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := herald.HeraldV1alpha1().Speakers().List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) != 3 {
			return false, nil
		}
		for _, sp := range list.Items {
			if !sp.Status.Healthy || sp.Status.Members != 3 || int(sp.Status.Layer2Count) != count[sp.Name] || len(sp.Status.Announcements) != count[sp.Name] {
				return false, nil
			}
			for _, a := range sp.Status.Announcements {
				if a.Protocol != "layer2" || a.Pool != "lan" || len(a.Services) != 1 || a.Since.IsZero() {
					t.Errorf("%s reports %+v", sp.Name, a)
				}
			}
		}
		return true, nil
	})
	if err != nil {
		list, _ := herald.HeraldV1alpha1().Speakers().List(ctx, metav1.ListOptions{})
		t.Fatalf("Speaker reports never matched %v: %+v", count, list)
	}

	// Crash node-b (no leave): its addresses move, the others' stay.
	before := own
	crash := time.Now()
	if err := nodes[1].members.Shutdown(); err != nil {
		t.Fatal(err)
	}
	survivors := []*testNode{nodes[0], nodes[2]}
	after := waitOwners(t, survivors, vips, func(o []string) bool { return len(o) == 1 })
	t.Logf("crash of node-b: every address re-homed after %v", time.Since(crash).Round(time.Millisecond))
	for _, a := range vips {
		if before[a][0] != "node-b" && after[a][0] != before[a][0] {
			t.Errorf("%s moved from %s to %s though its owner survived", a, before[a][0], after[a][0])
		}
	}

	// ETP Local: only the node with a ready endpoint announces.
	local := netip.MustParseAddr("198.51.100.200")
	createLB(t, kube, "local", local, true)
	waitOwners(t, survivors, []netip.Addr{local}, func(o []string) bool { return len(o) == 0 })
	setEndpoints(t, kube, "local", "node-c")
	waitOwners(t, survivors, []netip.Addr{local}, func(o []string) bool { return len(o) == 1 && o[0] == "node-c" })
	move := time.Now()
	setEndpoints(t, kube, "local", "node-a")
	waitOwners(t, survivors, []netip.Addr{local}, func(o []string) bool { return len(o) == 1 && o[0] == "node-a" })
	t.Logf("ETP Local endpoint move: new owner decided %v after the EndpointSlice write", time.Since(move).Round(time.Millisecond))

	// Graceful stop of node-c: node-a owns everything before node-c lets go.
	all := append(slices.Clone(vips), local)
	nodes[2].cancel()
	<-nodes[2].done
	_, cLetGo := nodes[2].l2.Current()
	aCur, aChanged := nodes[0].l2.Current()
	have := map[netip.Addr]bool{}
	for _, an := range aCur {
		have[an.Addr] = true
	}
	missing := 0
	for _, a := range all {
		if a != local && !have[a] {
			missing++
		}
	}
	if missing > 0 || aChanged.After(cLetGo) {
		t.Errorf("graceful stop: node-a took over at %v, node-c withdrew at %v, %d addresses missing at node-a", aChanged, cLetGo, missing)
	}
}

func createLB(t *testing.T, kube kubernetes.Interface, name string, vip netip.Addr, local bool) {
	t.Helper()
	ctx := context.Background()
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}},
			Selector: map[string]string{"app": name}, AllocateLoadBalancerNodePorts: ptr.To(false)},
	}
	if local {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	s, err := kube.CoreV1().Services("app").Create(ctx, s, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: vip.String()}}
	if _, err := kube.CoreV1().Services("app").UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// setEndpoints writes the Service's one EndpointSlice with a ready
// endpoint on node, as the EndpointSlice controller would.
func setEndpoints(t *testing.T, kube kubernetes.Interface, svc, node string) {
	t.Helper()
	ctx := context.Background()
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "app", Name: svc + "-eps", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"198.51.100.250"}, NodeName: ptr.To(node), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Port: ptr.To(int32(8080))}},
	}
	cur, err := kube.DiscoveryV1().EndpointSlices("app").Get(ctx, es.Name, metav1.GetOptions{})
	if err == nil {
		es.ResourceVersion = cur.ResourceVersion
		_, err = kube.DiscoveryV1().EndpointSlices("app").Update(ctx, es, metav1.UpdateOptions{})
	} else {
		_, err = kube.DiscoveryV1().EndpointSlices("app").Create(ctx, es, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}
