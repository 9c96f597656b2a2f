package testcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The pinned versions. They name the cache directory, so they must match
// hack/k8sbin.sh, e2e/k8sbin/go.mod and e2e/etcdbin/go.mod;
// TestVersionsMatchBuildFiles holds them together.
const (
	KubernetesVersion = "v1.37.2"
	EtcdVersion       = "v3.6.16"
)

// BinDirEnv overrides where the binaries are looked for (and where
// hack/k8sbin.sh puts them).
const BinDirEnv = "HERALD_K8S_BIN_DIR"

// ErrBinariesMissing is returned (wrapped) when the control-plane binaries
// have not been built yet.
var ErrBinariesMissing = errors.New("kubernetes test binaries missing: run `make k8sbin` (hack/k8sbin.sh) to build them")

// The binaries a cluster may run; kube-proxy is not run here but is built
// and looked up alongside for the lab.
const (
	binEtcd              = "etcd"
	binAPIServer         = "kube-apiserver"
	binControllerManager = "kube-controller-manager"
	binKubeProxy         = "kube-proxy"
)

var allBinaries = []string{binEtcd, binAPIServer, binControllerManager, binKubeProxy}

// BinDir returns the directory holding etcd, kube-apiserver,
// kube-controller-manager and kube-proxy: $HERALD_K8S_BIN_DIR if set, else
// the cache directory hack/k8sbin.sh builds into. The error wraps
// [ErrBinariesMissing] when any of them is not there; the directory is
// returned anyway so callers can name it.
func BinDir() (string, error) {
	dir := os.Getenv(BinDirEnv)
	if dir == "" {
		// Mirrors the script's ${XDG_CACHE_HOME:-$HOME/.cache} rather than
		// os.UserCacheDir, which differs from it on non-Linux systems.
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("finding the kubernetes test binaries: %w", err)
			}
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "herald", "k8s-"+KubernetesVersion+"-etcd-"+EtcdVersion)
	}
	var missing []string
	for _, name := range allBinaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return dir, fmt.Errorf("%w (looked in %s, set %s to look elsewhere; missing: %s)",
			ErrBinariesMissing, dir, BinDirEnv, strings.Join(missing, ", "))
	}
	return dir, nil
}
