package lab

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// herald's speakers in a kubelet lab are the Pods of install.yaml's
// DaemonSet; these helpers find and restart them.

// speakerNamespace and speakerDaemonSet are where install.yaml puts the
// speakers.
const (
	speakerNamespace = "herald-system"
	speakerDaemonSet = "herald-speaker"
)

// podProc finds the process whose command is name among node's Pods (the
// cgroups of its kubelet), the newest if several.
func (l *Lab) podProc(node, name string) (Proc, bool) {
	l.mu.Lock()
	instance := l.state.Instance
	l.mu.Unlock()
	var best Proc
	for _, pid := range cgroupPIDs(labCgroup(instance) + "/" + node + "/kubepods") {
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != name {
			continue
		}
		st, err := procStartTime(pid)
		if err != nil || st < best.StartTime {
			continue
		}
		best = Proc{Node: node, Name: name, PID: pid, StartTime: st}
	}
	return best, best.PID != 0
}

// waitSpeakerPod waits until node runs a speaker process other than old
// (zero: any) and it answers /readyz.
func (l *Lab) waitSpeakerPod(ctx context.Context, node string, old Proc) error {
	if err := poll(ctx, 90*time.Second, func() (bool, error) {
		p, ok := l.podProc(node, "herald-speaker")
		return ok && (p.PID != old.PID || p.StartTime != old.StartTime), nil
	}); err != nil {
		return fmt.Errorf("waiting for the kubelet on %s to run a new speaker: %w", node, err)
	}
	return l.WaitSpeakerReady(ctx, node)
}

// RolloutRestartSpeakers restarts the speakers as an operator does:
// `kubectl rollout restart daemonset`, then `rollout status` until every
// node runs a new, ready speaker.
func (l *Lab) RolloutRestartSpeakers(ctx context.Context) error {
	if !l.kubelet() {
		return fmt.Errorf("restarting the speaker DaemonSet: the lab runs no kubelet")
	}
	if _, err := l.Kubectl(ctx, "-n", speakerNamespace, "rollout", "restart", "daemonset/"+speakerDaemonSet); err != nil {
		return err
	}
	_, err := l.Kubectl(ctx, "-n", speakerNamespace, "rollout", "status", "daemonset/"+speakerDaemonSet, "--timeout=300s")
	return err
}

// deleteSpeakerPod deletes node's speaker Pod (the kubelet stops it with
// SIGTERM and its grace period) and waits until the DaemonSet's new Pod
// on node is ready.
func (l *Lab) deleteSpeakerPod(ctx context.Context, node string) error {
	pods, err := l.Kube.CoreV1().Pods(speakerNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/component=speaker", FieldSelector: "spec.nodeName=" + node,
	})
	if err != nil {
		return err
	}
	if len(pods.Items) == 0 {
		return fmt.Errorf("no speaker Pod on %s", node)
	}
	old, _ := l.podProc(node, "herald-speaker")
	for _, p := range pods.Items {
		if err := l.Kube.CoreV1().Pods(speakerNamespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("deleting speaker Pod %s: %w", p.Name, err)
		}
	}
	return l.waitSpeakerPod(ctx, node, old)
}
