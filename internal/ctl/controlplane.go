package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/internal/bgpplan"
	"github.com/heraldlb/herald/internal/cpvip"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/version"
)

// cpOptions are `control-plane manifest`'s flags.
type cpOptions struct {
	vips, peers, iface, image, keyFile, caFile string
	port                                       int
	bgpPeers                                   string
	bgpASN, bgpPeerASN                         uint64
}

// Where the static Pod finds its files on the node (kubeadm's layout for
// the CA).
const (
	cpDefaultKeyFile = "/etc/kubernetes/herald/memberlist.key"
	// The key's directory is mounted, not the file: a file mount keeps
	// showing the old file once the key is replaced by a rename (install,
	// mv, most editors), and the speaker follows key changes.
	cpKeyDirMount = "/etc/herald/memberlist"
	cpCAMount     = cpvip.KubeadmCAFile
)

// defaultSpeakerImage is the release's speaker image for this heraldctl's
// version.
func defaultSpeakerImage() string {
	return "ghcr.io/heraldlb/herald-speaker:" + version.Get().Version
}

// controlPlaneManifest prints the static Pod that runs herald-speaker in
// control-plane mode: one manifest for every control-plane node, each
// finding its own address among --peers.
func controlPlaneManifest(env Env, o cpOptions, output string) error {
	vips, err := cpvip.ParseVIPs(o.vips)
	if err != nil {
		return fmt.Errorf("--vip: %w", err)
	}
	peers, err := cpvip.ParsePeers(o.peers, o.port)
	if err != nil {
		return fmt.Errorf("--peers: %w", err)
	}
	if len(peers) == 0 {
		return errors.New("--peers: list the address of every control-plane node (this one included)")
	}
	for _, v := range vips {
		for _, p := range peers {
			if p.Addr() == v {
				return fmt.Errorf("VIP %s is also a node's address in --peers", v)
			}
		}
	}
	if o.image == "" {
		return errors.New("--image must not be empty")
	}
	if o.port < 1 || o.port > 65535 || o.port == membership.DefaultPort {
		return fmt.Errorf("--memberlist-port %d: want a port other than the Service speakers' %d", o.port, membership.DefaultPort)
	}
	if !filepath.IsAbs(o.keyFile) || !filepath.IsAbs(o.caFile) {
		return errors.New("--key-file and --ca-file must be absolute paths on the nodes")
	}
	keyMount := filepath.Join(cpKeyDirMount, filepath.Base(o.keyFile))
	var vs, ps []string
	for _, v := range vips {
		vs = append(vs, v.String())
	}
	for _, p := range peers {
		ps = append(ps, p.String())
	}
	args := []string{"control-plane", "--vip=" + strings.Join(vs, ","), "--peers=" + strings.Join(ps, ","),
		"--memberlist-key-file=" + keyMount, "--apiserver-ca-file=" + cpCAMount}
	if o.port != cpvip.DefaultPort {
		args = append(args, fmt.Sprintf("--memberlist-port=%d", o.port))
	}
	if o.iface != "" {
		args = append(args, "--interface="+o.iface)
	}
	bgpArgs, err := o.bgpArgs()
	if err != nil {
		return err
	}
	args = append(args, bgpArgs...)
	file, dir := corev1.HostPathFile, corev1.HostPathDirectory
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "herald-control-plane", Namespace: "kube-system", Labels: map[string]string{
			"app.kubernetes.io/name": "herald", "app.kubernetes.io/component": "control-plane-vip", "app.kubernetes.io/part-of": "herald",
		}},
		Spec: corev1.PodSpec{
			HostNetwork:       true,
			PriorityClassName: "system-node-critical",
			// Long enough for the graceful handover: publish, then withdraw.
			TerminationGracePeriodSeconds: ptr.To[int64](10),
			SecurityContext: &corev1.PodSecurityContext{
				// Started as root (without DAC_OVERRIDE: the key is
				// root:65532 0440) to read the key and the CA; the speaker
				// then switches to 65532, keeping only NET_ADMIN (the VIP on
				// lo) and NET_RAW (ARP/NDP), and re-reads the key by its
				// group.
				RunAsUser: ptr.To[int64](0), RunAsGroup: ptr.To[int64](0),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "speaker", Image: o.image, Args: args,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Capabilities: &corev1.Capabilities{
						Drop: []corev1.Capability{"ALL"},
						Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW", "SETUID", "SETGID"},
					},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
				},
				LivenessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(cpvip.DefaultMetricsPort)}},
					PeriodSeconds: 10, FailureThreshold: 3,
				},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "memberlist-key", MountPath: cpKeyDirMount, ReadOnly: true},
					{Name: "ca", MountPath: cpCAMount, ReadOnly: true},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "memberlist-key", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: filepath.Dir(o.keyFile), Type: &dir}}},
				{Name: "ca", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: o.caFile, Type: &file}}},
			},
		},
	}
	// A static Pod has no status to give; an empty one would only confuse.
	obj, err := toMap(pod)
	if err != nil {
		return err
	}
	delete(obj, "status")
	delete(obj["metadata"].(map[string]any), "creationTimestamp")
	switch output {
	case "json":
		enc := json.NewEncoder(env.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(obj)
	case "yaml":
		raw, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(env.Out, "# herald's control-plane VIP: put this file into /etc/kubernetes/manifests/ on every\n"+
			"# control-plane node, and the same memberlist key (base64 of 32 random bytes) into\n# %s, owned by root:65532, mode 0440.\n%s", o.keyFile, raw)
		return err
	}
	return fmt.Errorf("-o %s: a manifest is printed as yaml or json", output)
}

// bgpArgs are the speaker's BGP flags, checked as far as they can be
// without the node (the speaker checks the rest where it runs).
func (o cpOptions) bgpArgs() ([]string, error) {
	if o.bgpPeers == "" {
		if o.bgpASN != 0 || o.bgpPeerASN != 0 {
			return nil, errors.New("--bgp-asn and --bgp-peer-asn need --bgp-peers")
		}
		return nil, nil
	}
	peers, err := cpvip.ParsePeers(o.bgpPeers, bgpplan.DefaultPort)
	if err != nil {
		return nil, fmt.Errorf("--bgp-peers: %w", err)
	}
	switch {
	case o.bgpASN == 0 || o.bgpASN > math.MaxUint32 || o.bgpPeerASN > math.MaxUint32:
		return nil, fmt.Errorf("--bgp-asn %d, --bgp-peer-asn %d: AS numbers are 1 to %d, and --bgp-asn is required with --bgp-peers", o.bgpASN, o.bgpPeerASN, uint64(math.MaxUint32))
	case o.iface != "":
		return nil, errors.New("--interface is for ARP/NDP; with --bgp-peers the VIP is routed")
	}
	var ps []string
	for _, p := range peers {
		ps = append(ps, p.String())
	}
	args := []string{"--bgp-peers=" + strings.Join(ps, ","), fmt.Sprintf("--bgp-asn=%d", o.bgpASN)}
	if o.bgpPeerASN != 0 {
		args = append(args, fmt.Sprintf("--bgp-peer-asn=%d", o.bgpPeerASN))
	}
	return args, nil
}

func toMap(v any) (map[string]any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(raw, &m)
}
