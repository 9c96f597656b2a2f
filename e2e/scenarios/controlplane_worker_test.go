//go:build privileged

package scenarios

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/heraldlb/herald/e2e/lab/lab"
	"github.com/heraldlb/herald/e2e/lab/netns"
)

// A worker node whose clients use the VIP too: kube-proxy and the Service
// speaker (herald-speaker as the DaemonSet runs it) in a namespace of their
// own, with a backend, so that a LoadBalancer Service of the control-plane
// lab's cluster is assigned, announced and forwarded entirely through the
// VIP.
const (
	cpWorker     = cpPrefix + "w1"
	cpWorkerName = "w1"
	cpWorkerAddr = "203.0.113.21"
	cpLBPrefix   = "198.51.100.0/28" // the lab's IPPool
)

// vipKube is an admin client that reaches the API only through the VIP,
// from the client namespace.
func (l *cpLab) vipKube() kubernetes.Interface {
	cfg := rest.CopyConfig(l.cluster.Config)
	cfg.Host = "https://" + net.JoinHostPort(cpVIP4.String(), fmt.Sprint(cpPort))
	cfg.Dial = netns.Dialer(cpClient)
	cfg.Timeout = 5 * time.Second
	return kubernetes.NewForConfigOrDie(cfg)
}

// startWorker registers the worker's Node, and starts its backend,
// kube-proxy and Service speaker, all with the VIP kubeconfig.
func (l *cpLab) startWorker(ctx context.Context) {
	t := l.t
	addNS(ctx, t, cpWorker)
	attach(ctx, t, cpWorker, "pw1", cpWorkerAddr+"/24")
	// The client reaches Service addresses on its own segment.
	ipIn(ctx, t, cpClient, "route", "add", cpLBPrefix, "dev", "eth0")

	kube := l.vipKube()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: cpWorkerName, Labels: map[string]string{"kubernetes.io/hostname": cpWorkerName, "kubernetes.io/os": "linux"}}}
	created, err := kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	created.Status = corev1.NodeStatus{
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: cpWorkerAddr}, {Type: corev1.NodeHostName, Address: cpWorkerName}},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}},
	}
	if _, err := kube.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	root, _ := lab.RepoRoot()
	backend := filepath.Join(l.dir, "backend")
	build := exec.CommandContext(ctx, "go", "build", "-o", backend, "./e2e/lab/backend")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the backend: %v\n%s", err, out)
	}
	l.startIn(cpWorker, "backend", backend, "--name", cpWorkerName, "--listen", cpWorkerAddr+":8080")
	l.startIn(cpWorker, "kube-proxy", filepath.Join(l.cluster.BinDir, "kube-proxy"),
		"--kubeconfig="+l.kubecfg, "--hostname-override="+cpWorkerName, "--proxy-mode=nftables",
		"--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0",
		"--healthz-bind-address=127.0.0.1:10256", "--metrics-bind-address=127.0.0.1:10249", "--v=1")
	l.startIn(cpWorker, "herald-speaker", l.bin, "--kubeconfig", l.kubecfg, "--node-name", cpWorkerName,
		"--bind-addr", cpWorkerAddr, "--memberlist-key-file", l.keyFile, "--memberlist-key-secret=",
		"--metrics-addr", cpWorkerAddr+":7473", "--cache-dir", filepath.Join(l.dir, "speaker-cache"))
}

// startIn runs a process in ns until the test ends, logging to the lab dir.
func (l *cpLab) startIn(ns, name string, argv ...string) {
	logf, err := os.Create(filepath.Join(l.dir, ns+"-"+name+".log"))
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := netns.Command(context.Background(), ns, argv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("starting %s in %s: %v", name, ns, err)
	}
	l.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = logf.Close()
	})
}

// serveThroughWorker creates a LoadBalancer Service whose one endpoint is
// the worker's backend, and waits until the client gets the backend's
// answer at the Service's address: the controller assigned it, the speaker
// announced it and kube-proxy forwarded it, each talking to the API
// through the VIP. It returns the address.
func (l *cpLab) serveThroughWorker(ctx context.Context, name string) string {
	t := l.t
	kube := l.vipKube()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}
	if _, err := kube.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-w1", Namespace: "default", Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "herald-lab"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{cpWorkerAddr}, NodeName: ptr.To(cpWorkerName),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true)}}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if _, err := kube.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return l.waitServed(ctx, name)
}

// waitServed waits until the client gets the worker backend's answer at
// Service name's address, and returns the address.
func (l *cpLab) waitServed(ctx context.Context, name string) string {
	t := l.t
	kube := l.vipKube()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: netns.Dialer(cpClient), DisableKeepAlives: true}}
	var addr, last string
	if err := pollUntil(60*time.Second, func() bool {
		s, err := kube.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(s.Status.LoadBalancer.Ingress) == 0 {
			last = fmt.Sprint("no address yet ", err)
			return false
		}
		addr = s.Status.LoadBalancer.Ingress[0].IP
		resp, err := hc.Get("http://" + net.JoinHostPort(addr, "80") + "/")
		if err != nil {
			last = err.Error()
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		last = string(body)
		return strings.HasPrefix(last, cpWorkerName+" ")
	}); err != nil {
		for _, f := range []string{"kube-proxy", "herald-speaker"} {
			if raw, rerr := os.ReadFile(filepath.Join(l.dir, cpWorker+"-"+f+".log")); rerr == nil {
				if len(raw) > 3000 {
					raw = raw[len(raw)-3000:]
				}
				t.Logf("--- worker %s log (tail):\n%s", f, raw)
			}
		}
		t.Fatalf("Service %s (%s) not served through the worker: %s", name, addr, last)
	}
	return addr
}

// intruder starts a control-plane speaker that cannot join the others (a
// key of its own) but whose API server check passes (it checks cp2's): it
// sees itself alone, takes the VIP after the settle time, and must give it
// back once the real holder and it see each other's answers.
func (l *cpLab) intruder(ctx context.Context) *cpNode {
	t := l.t
	n := &cpNode{name: "cp9", ns: cpPrefix + "cp9", v4: netip.MustParseAddr("203.0.113.19")}
	addNS(ctx, t, n.ns)
	attach(ctx, t, n.ns, "p9", n.v4.String()+"/24")
	other := filepath.Join(filepath.Dir(l.keyFile), "other.key")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(other, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	l.startSpeakerWith(n, l.manifestArgs(), "--bind-addr="+n.v4.String(), "--memberlist-key-file="+other,
		"--apiserver-url=https://"+net.JoinHostPort(l.node("cp2").v4.String(), fmt.Sprint(cpPort))+"/readyz")
	return n
}

// neighMAC is the client's neighbour entry for the IPv4 VIP.
func neighMAC(ctx context.Context) string {
	out, _ := netns.IP(ctx, "-n", cpClient, "neigh", "show", cpVIP4.String())
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// linkMAC is the MAC of ns's eth0.
func linkMAC(ctx context.Context, ns string) string {
	out, _ := netns.IP(ctx, "-n", ns, "-o", "link", "show", "eth0")
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}
