package lab

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/heraldlb/herald/e2e/lab/netns"
	"github.com/heraldlb/herald/e2e/lab/topology"
)

// Ports on each node's address.
const (
	speakerMetricsPort    = 7473
	controllerMetricsPort = 7472
	kubeProxyHealthPort   = 10256

	// The speaker's ports with Options.BesideMetalLB, as
	// config/components/beside-metallb sets them.
	besideMetalLBMemberlistPort = 7947
	besideMetalLBMetricsPort    = 7474
)

func (l *Lab) startNodes(ctx context.Context) error {
	cp := l.Topo.ByRole(topology.RoleControlPlane)[0]
	if l.opts.Kubelet {
		// Pods from install.yaml, once kube-proxy runs (installHerald).
	} else if _, err := l.start(cp.Name, "herald-controller", filepath.Join(l.BinDir, "herald-controller"),
		"--kubeconfig", l.Kubeconfig, "--log-level", "debug",
		"--metrics-addr", net.JoinHostPort(cp.Address.String(), strconv.Itoa(controllerMetricsPort))); err != nil {
		return err
	}
	for _, n := range l.Topo.ByRole(topology.RoleNode) {
		var proxyArgs []string
		if l.opts.Kubelet {
			// Traffic from outside the Pod ranges to a Service is
			// masqueraded when it leaves the node; Pods keep their own
			// addresses.
			proxyArgs = append(proxyArgs, "--cluster-cidr="+l.clusterCIDRs())
		} else {
			var listen []string
			for _, a := range n.Addresses() {
				listen = append(listen, net.JoinHostPort(a.String(), strconv.Itoa(BackendPort)))
			}
			if _, err := l.start(n.Name, "backend", filepath.Join(l.BinDir, "backend"),
				"--name", n.Name, "--listen", strings.Join(listen, ",")); err != nil {
				return err
			}
		}
		if _, err := l.start(n.Name, "kube-proxy", append([]string{filepath.Join(l.cluster.BinDir, "kube-proxy"),
			"--kubeconfig=" + l.Kubeconfig,
			"--hostname-override=" + n.Name,
			"--proxy-mode=nftables",
			// In a network namespace nf_conntrack_max is read-only (it is
			// global); 0 leaves it and the TCP timeouts alone.
			"--conntrack-max-per-core=0",
			"--conntrack-tcp-timeout-established=0",
			"--conntrack-tcp-timeout-close-wait=0",
			"--healthz-bind-address=0.0.0.0:" + strconv.Itoa(kubeProxyHealthPort),
			"--metrics-bind-address=127.0.0.1:10249",
			"--v=1"}, proxyArgs...)...); err != nil {
			return err
		}
		if l.opts.Kubelet {
			continue
		}
		if err := l.StartSpeaker(n.Name); err != nil {
			return err
		}
	}
	if l.opts.Kubelet {
		return l.installHerald(ctx)
	}
	return nil
}

// StartSpeaker starts (or restarts, after Kill) herald-speaker on node.
// In a kubelet lab the kubelet restarts the speaker container itself:
// this waits until a speaker runs on node and is ready.
func (l *Lab) StartSpeaker(node string) error {
	if l.kubelet() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		return l.waitSpeakerPod(ctx, node, Proc{})
	}
	n := l.Node(node)
	sandbox, err := speakerSandbox(l.opts.RepoRoot)
	if err != nil {
		return err
	}
	kubeconfig, err := l.speakerKubeconfig()
	if err != nil {
		return err
	}
	args := append(sandbox, filepath.Join(l.BinDir, "herald-speaker"),
		"--kubeconfig", kubeconfig, "--node-name", n.Name, "--memberlist-insecure", "--log-level", "debug",
		"--profiling", // the lab is where resource use is diagnosed
		"--metrics-addr", net.JoinHostPort(n.Address.String(), strconv.Itoa(l.speakerMetricsPort())),
	)
	if l.opts.BesideMetalLB {
		args = append(args, "--memberlist-port", strconv.Itoa(besideMetalLBMemberlistPort))
	}
	// The speaker writes its snapshot after switching to its own user,
	// which must be able to pass through the state directory.
	if err := os.Chmod(l.StateDir, 0o711); err != nil {
		return err
	}
	args = append(args, "--cache-dir", l.SpeakerCacheDir())
	_, err = l.start(n.Name, "herald-speaker", append(args, l.opts.SpeakerArgs...)...)
	return err
}

// SpeakerGet fetches path (for example "/debug/pprof/heap") from node's
// speaker metrics address.
func (l *Lab) SpeakerGet(ctx context.Context, node, path string) ([]byte, error) {
	url := l.speakerURL(node, path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := l.HTTPClient(node, 0).Do(req) // ctx bounds it
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, err
}

// speakerURL is path on node's speaker metrics address.
func (l *Lab) speakerURL(node, path string) string {
	return "http://" + net.JoinHostPort(l.Node(node).Address.String(), strconv.Itoa(l.speakerMetricsPort())) + path
}

// speakerMetricsPort is where the speakers serve metrics and health.
func (l *Lab) speakerMetricsPort() int {
	if l.opts.BesideMetalLB {
		return besideMetalLBMetricsPort
	}
	return speakerMetricsPort
}

// WaitSpeakerReady waits until node's speaker answers /readyz.
func (l *Lab) WaitSpeakerReady(ctx context.Context, node string) error {
	return l.waitHTTP(ctx, l.Node(node).Namespace, l.speakerURL(node, "/readyz"), "herald-speaker on "+node)
}

// waitHTTP waits until url answers 200 from inside namespace ns. An
// https URL is a component's self-signed health endpoint on loopback: its
// certificate is not checked, there is nothing to prove on that path.
func (l *Lab) waitHTTP(ctx context.Context, ns, url, what string) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: netns.Dialer(ns), DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
	}}
	var last error
	err := poll(ctx, 60*time.Second, func() (bool, error) {
		resp, err := hc.Get(url)
		if err != nil {
			last = err
			return false, nil
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("%s", resp.Status)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s (%s): %w (last: %v)", what, url, err, last)
	}
	return nil
}

// waitReady waits for every process to serve: kube-proxy healthy with its
// nftables table in place, speakers and the controller ready.
func (l *Lab) waitReady(ctx context.Context) error {
	cp := l.Topo.ByRole(topology.RoleControlPlane)[0]
	// A kubelet lab's controller is a Pod, whose readiness its rollout
	// covered.
	if !l.opts.Kubelet {
		if err := l.waitHTTP(ctx, cp.Namespace, "http://"+net.JoinHostPort(cp.Address.String(), strconv.Itoa(controllerMetricsPort))+"/readyz",
			"herald-controller"); err != nil {
			return err
		}
	}
	for _, n := range l.Topo.ByRole(topology.RoleNode) {
		if err := l.waitHTTP(ctx, n.Namespace, "http://127.0.0.1:"+strconv.Itoa(kubeProxyHealthPort)+"/healthz", "kube-proxy on "+n.Name); err != nil {
			return err
		}
		if err := poll(ctx, 30*time.Second, func() (bool, error) {
			out, err := netns.Run(ctx, n.Namespace, "nft", "list", "tables")
			return err == nil && strings.Contains(out, "kube-proxy"), nil
		}); err != nil {
			return fmt.Errorf("kube-proxy on %s programmed no nftables table: %w", n.Name, err)
		}
		if err := l.WaitSpeakerReady(ctx, n.Name); err != nil {
			return err
		}
	}
	return nil
}
