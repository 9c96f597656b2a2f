package lab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/e2e/lab/netns"
	"github.com/heraldlb/herald/e2e/lab/topology"
	"github.com/heraldlb/herald/internal/release"
)

// installManifest is the release's install manifest, as an operator
// applies it.
const installManifest = "manifests/install.yaml"

// KubectlPath is the pinned kubectl (hack/k8sbin.sh builds it).
func (l *Lab) KubectlPath() string { return filepath.Join(l.k8sBinDir(), "kubectl") }

// Kubectl runs the pinned kubectl with the lab's admin kubeconfig from
// the control-plane namespace and returns its combined output.
func (l *Lab) Kubectl(ctx context.Context, args ...string) (string, error) {
	cp := l.Topo.ByRole(topology.RoleControlPlane)[0]
	argv := append([]string{l.KubectlPath(), "--kubeconfig", l.Kubeconfig}, args...)
	return netns.Run(ctx, cp.Namespace, argv...)
}

// SpeakerCacheDir is the directory the speakers keep their snapshots in
// (herald-speaker --cache-dir, as seen from the host): a file per node,
// speaker-NODE.json.gz.
func (l *Lab) SpeakerCacheDir() string { return filepath.Join(l.StateDir, "speaker-cache") }

// besideMetalLBComponent moves the speakers' ports off MetalLB's.
const besideMetalLBComponent = "config/components/beside-metallb"

// installHerald installs herald the way docs/install.md tells an operator
// to: install.yaml applied server-side, unchanged but for a kustomize
// image override naming the images the lab built (tag LabVersion, which
// every node has imported), then the memberlist Secret with a fresh
// random key; and waits until the controller's Deployment and the
// speakers' DaemonSet have rolled out.
func (l *Lab) installHerald(ctx context.Context) error {
	t := time.Now()
	dir := filepath.Join(l.StateDir, "install")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(l.opts.RepoRoot, installManifest))
	if err != nil {
		return fmt.Errorf("reading the install manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "install.yaml"), raw, 0o644); err != nil {
		return err
	}
	var images []map[string]string
	for _, name := range release.Images {
		images = append(images, map[string]string{"name": "ghcr.io/heraldlb/" + name, "newTag": LabVersion})
	}
	// The speakers' snapshots go to the lab's state, not to the host's
	// /var/lib/herald: every lab node shares the host's file system.
	cachePatch := `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: herald-speaker, namespace: herald-system}
spec:
  template:
    spec:
      volumes:
      - name: cache
        hostPath: {path: ` + l.SpeakerCacheDir() + `}
`
	kustomization := map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  []string{"install.yaml"},
		"images":     images,
		"patches":    []map[string]string{{"patch": cachePatch}},
	}
	if l.opts.BesideMetalLB {
		// As docs/migrating-from-metallb.md installs it: the component in
		// an overlay (copied in, as kustomize loads files from below the
		// overlay only).
		comp, err := os.ReadFile(filepath.Join(l.opts.RepoRoot, besideMetalLBComponent, "kustomization.yaml"))
		if err != nil {
			return fmt.Errorf("reading the beside-metallb component: %w", err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "beside-metallb"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "beside-metallb", "kustomization.yaml"), comp, 0o644); err != nil {
			return err
		}
		kustomization["components"] = []string{"beside-metallb"}
	}
	kust, err := yaml.Marshal(kustomization)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), kust, 0o644); err != nil {
		return err
	}
	steps := [][]string{
		{"apply", "--server-side", "-k", dir},
		{"wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"},
	}
	for _, args := range steps {
		out, err := l.Kubectl(ctx, args...)
		if err != nil {
			return fmt.Errorf("installing herald: %w", err)
		}
		l.log.Debug("kubectl", "args", strings.Join(args, " "), "out", out)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if _, err := l.Kubectl(ctx, "create", "secret", "generic", "herald-memberlist", "-n", "herald-system",
		"--from-literal=key="+base64.StdEncoding.EncodeToString(key)); err != nil {
		return fmt.Errorf("creating the memberlist Secret: %w", err)
	}
	for _, obj := range []string{"deploy/herald-controller", "ds/herald-speaker"} {
		if _, err := l.Kubectl(ctx, "-n", "herald-system", "rollout", "status", obj, "--timeout=180s"); err != nil {
			return fmt.Errorf("waiting for %s to roll out: %w\n%s", obj, err, l.podDiagnosis(ctx, "herald-system"))
		}
	}
	l.log.Info("herald installed from "+installManifest, "took", since(t))
	return nil
}

// podDiagnosis describes the Pods of namespace ns and their last log
// lines, for an error that says why they never became ready.
func (l *Lab) podDiagnosis(ctx context.Context, ns string) string {
	var b strings.Builder
	for _, args := range [][]string{
		{"-n", ns, "get", "pods", "-o", "wide"},
		{"-n", ns, "describe", "pods"},
		{"-n", ns, "logs", "--all-containers", "--prefix", "--tail=15", "-l", "app.kubernetes.io/name=herald"},
	} {
		out, err := l.Kubectl(ctx, args...)
		fmt.Fprintf(&b, "$ kubectl %s\n%s", strings.Join(args, " "), out)
		if err != nil {
			fmt.Fprintf(&b, "(%v)\n", err)
		}
	}
	return b.String()
}
