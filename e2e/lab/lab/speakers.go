package lab

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RestartSpeaker restarts node's speaker as a rolling upgrade does: SIGTERM,
// wait until it has exited and the other speakers report it gone, start it
// again, and wait until it is ready and every speaker reports all nodes
// as members again.
//
// In a kubelet lab it deletes node's speaker Pod, which the kubelet stops
// with SIGTERM and the DaemonSet replaces.
func (l *Lab) RestartSpeaker(ctx context.Context, node string) error {
	if l.kubelet() {
		if err := l.deleteSpeakerPod(ctx, node); err != nil {
			return err
		}
		if err := l.WaitMembers(ctx, l.Nodes(), l.Nodes(), 30*time.Second); err != nil {
			return fmt.Errorf("after restarting the speaker on %s: %w", node, err)
		}
		return nil
	}
	p, ok := l.Proc(node, "herald-speaker")
	if !ok {
		return fmt.Errorf("no speaker on %s", node)
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if !p.waitGone(20 * time.Second) {
		return fmt.Errorf("speaker on %s (pid %d) still running 20 s after SIGTERM", node, p.PID)
	}
	others := slices.DeleteFunc(l.Nodes(), func(n string) bool { return n == node })
	if err := l.WaitMembers(ctx, others, others, 30*time.Second); err != nil {
		return fmt.Errorf("after stopping the speaker on %s: %w", node, err)
	}
	if err := l.StartSpeaker(node); err != nil {
		return err
	}
	if err := l.WaitSpeakerReady(ctx, node); err != nil {
		return err
	}
	if err := l.WaitMembers(ctx, l.Nodes(), l.Nodes(), 30*time.Second); err != nil {
		return fmt.Errorf("after restarting the speaker on %s: %w", node, err)
	}
	return nil
}

// WaitMembers waits until the Speaker object of every node in reporters
// lists exactly members as its live memberlist members.
func (l *Lab) WaitMembers(ctx context.Context, reporters, members []string, timeout time.Duration) error {
	hc, err := l.Herald()
	if err != nil {
		return err
	}
	want := slices.Sorted(slices.Values(members))
	var last string
	err = poll(ctx, timeout, func() (bool, error) {
		for _, n := range reporters {
			sp, err := hc.HeraldV1alpha1().Speakers().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			got := slices.Sorted(slices.Values(sp.Status.LiveMembers))
			if !slices.Equal(got, want) {
				last = fmt.Sprintf("%s sees %v", n, got)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("speakers %v never all saw members %v (last: %s): %w", reporters, want, last, err)
	}
	return nil
}
