package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// speakerManifest is the DaemonSet whose security context the lab's
// process-level speakers reproduce.
const speakerManifest = "config/speaker/speaker.yaml"

// speakerGID is the group the speaker switches to (its --run-as default);
// files it must read after the switch are group-readable by it.
const speakerGID = 65532

// speakerSandbox returns the setpriv prefix that starts a speaker as the
// container runtime starts the manifest's speaker container: as the
// manifest's user, with exactly its capabilities in the bounding set (and
// so, for root, in the permitted and effective sets), none inheritable,
// and no_new_privs when the manifest forbids privilege escalation. The
// speaker then drops to its own user as it does in a cluster, so the lab
// proves that the manifest's capability set is enough and that nothing
// depends on file capabilities.
func speakerSandbox(repoRoot string) ([]string, error) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, speakerManifest))
	if err != nil {
		return nil, err
	}
	var ds appsv1.DaemonSet
	if err := yaml.Unmarshal(raw, &ds); err != nil {
		return nil, fmt.Errorf("reading %s: %w", speakerManifest, err)
	}
	pod := ds.Spec.Template.Spec
	if len(pod.Containers) != 1 || pod.Containers[0].SecurityContext == nil || pod.Containers[0].SecurityContext.Capabilities == nil {
		return nil, fmt.Errorf("%s: want one container with a capabilities security context", speakerManifest)
	}
	sc := pod.Containers[0].SecurityContext
	if !slices.ContainsFunc(sc.Capabilities.Drop, func(c corev1.Capability) bool { return strings.EqualFold(string(c), "ALL") }) {
		return nil, fmt.Errorf("%s: the speaker must drop ALL capabilities before adding its own", speakerManifest)
	}
	bounding := "-all"
	for _, c := range sc.Capabilities.Add {
		bounding += ",+" + strings.ToLower(string(c))
	}
	uid, gid := int64(0), int64(0)
	if pod.SecurityContext != nil {
		if pod.SecurityContext.RunAsUser != nil {
			uid = *pod.SecurityContext.RunAsUser
		}
		if pod.SecurityContext.RunAsGroup != nil {
			gid = *pod.SecurityContext.RunAsGroup
		}
	}
	if sc.RunAsUser != nil {
		uid = *sc.RunAsUser
	}
	if sc.RunAsGroup != nil {
		gid = *sc.RunAsGroup
	}
	args := []string{"setpriv", fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", gid), "--clear-groups",
		"--bounding-set=" + bounding, "--inh-caps=-all"}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		args = append(args, "--no-new-privs")
	}
	return append(args, "--"), nil
}

// speakerKubeconfig writes a copy of the lab's kubeconfig that the speaker
// can still read after it switched to its own user.
func (l *Lab) speakerKubeconfig() (string, error) {
	raw, err := os.ReadFile(l.Kubeconfig)
	if err != nil {
		return "", err
	}
	// The state dir may come from os.MkdirTemp (0700): the speaker's user
	// must be able to pass through it; its other files keep their modes.
	if err := os.Chmod(l.StateDir, 0o711); err != nil {
		return "", err
	}
	path := filepath.Join(l.StateDir, "speaker.kubeconfig")
	if err := os.WriteFile(path, raw, 0o440); err != nil {
		return "", err
	}
	return path, os.Chown(path, 0, speakerGID)
}
