//go:build privileged

package privilege

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDropInContainerLikeProcess runs a cgo-free program that calls Drop
// under setpriv with the capability sets a container runtime gives the
// speaker's container (root, bounding set from the manifest, no_new_privs
// as allowPrivilegeEscalation: false), and with the sets of policies that
// strip capabilities.
func TestDropInContainerLikeProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (setpriv with a chosen bounding set)")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "dropper")
	build := exec.Command("go", "build", "-o", bin, "./testdata/dropper")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building dropper: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"the manifest's set: switches to 65532 with NET_RAW only, for good",
			[]string{"--bounding-set=-all,+net_raw,+setuid,+setgid"},
			"drop=<nil> uid=65532 gid=65532 eff=NET_RAW prm=NET_RAW raw=<nil> setuid0=operation not permitted"},
		{"a policy that strips SETUID/SETGID: stays root with NET_RAW",
			[]string{"--bounding-set=-all,+net_raw"},
			"drop=" + ErrCannotSwitch.Error() + " uid=0 gid=0 eff=NET_RAW prm=NET_RAW raw=<nil> setuid0=<nil>"},
		{"a policy that strips NET_RAW: still switches to 65532, with nothing",
			[]string{"--bounding-set=-all,+setuid,+setgid"},
			"drop=switched to 65532:65532 without NET_RAW, which this process was not permitted uid=65532 gid=65532 eff=none prm=none raw=operation not permitted setuid0=operation not permitted"},
		{"non-root without file capabilities: nothing to keep, and it says so",
			[]string{"--reuid=65532", "--regid=65532", "--clear-groups", "--bounding-set=-all,+net_raw"},
			"drop=running as uid 65532 with capabilities none; NET_RAW needed uid=65532 gid=65532 eff=none prm=none raw=operation not permitted setuid0=operation not permitted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{}, tc.args...), "--inh-caps=-all", "--no-new-privs", bin)
			out, err := exec.Command(setpriv, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
