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
	// MinimumKubernetesVersion is the oldest release herald's CRDs install
	// on (docs/install.md says why). hack/k8sbin-min.sh builds its
	// kube-apiserver from e2e/k8sbin-min into a directory of its own.
	MinimumKubernetesVersion = "v1.32.13"
)

// BinDirEnv overrides where the binaries are looked for (and where
// hack/k8sbin.sh puts them); MinBinDirEnv does the same for the minimum
// release's kube-apiserver and hack/k8sbin-min.sh.
const (
	BinDirEnv    = "HERALD_K8S_BIN_DIR"
	MinBinDirEnv = "HERALD_K8S_MIN_BIN_DIR"
)

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
	dir, err := cacheDir(BinDirEnv, "k8s-"+KubernetesVersion+"-etcd-"+EtcdVersion)
	if err != nil {
		return "", fmt.Errorf("finding the kubernetes test binaries: %w", err)
	}
	var missing []string
	for _, name := range allBinaries {
		if !isExecutable(filepath.Join(dir, name)) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return dir, fmt.Errorf("%w (looked in %s, set %s to look elsewhere; missing: %s)",
			ErrBinariesMissing, dir, BinDirEnv, strings.Join(missing, ", "))
	}
	return dir, nil
}

// MinimumAPIServer returns the path of the kube-apiserver of
// [MinimumKubernetesVersion]: in $HERALD_K8S_MIN_BIN_DIR if set, else in
// the cache directory hack/k8sbin-min.sh builds into. The error wraps
// [ErrBinariesMissing] when it is not there. Run it with
// [Options.APIServer].
func MinimumAPIServer() (string, error) {
	dir, err := cacheDir(MinBinDirEnv, "k8s-"+MinimumKubernetesVersion)
	if err != nil {
		return "", fmt.Errorf("finding kube-apiserver %s: %w", MinimumKubernetesVersion, err)
	}
	path := filepath.Join(dir, binAPIServer)
	if !isExecutable(path) {
		return path, fmt.Errorf("%w (kube-apiserver %s is not in %s: `make k8sbin-min` (hack/k8sbin-min.sh) builds it; set %s to look elsewhere)",
			ErrBinariesMissing, MinimumKubernetesVersion, dir, MinBinDirEnv)
	}
	return path, nil
}

// cacheDir returns $env if set, else name under the cache directory the
// scripts in hack/ build into.
func cacheDir(env, name string) (string, error) {
	if dir := os.Getenv(env); dir != "" {
		return dir, nil
	}
	// Mirrors the scripts' ${XDG_CACHE_HOME:-$HOME/.cache} rather than
	// os.UserCacheDir, which differs from it on non-Linux systems.
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "herald", name), nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
