package ctl

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	heraldfake "github.com/heraldlb/herald/internal/client/clientset/versioned/fake"
	"github.com/heraldlb/herald/internal/memberkey"
)

// rotationRig is a cluster of fake speakers n1..n3 that apply the key
// Secret when the test says so; lag[name] is how many polls a speaker
// lets pass before it applies a new Secret (-1: never).
type rotationRig struct {
	t       *testing.T
	c       *clients
	clk     *clocktesting.FakeClock
	lag     map[string]int
	behind  map[string]int // polls since the Secret changed, per speaker
	seen    string         // the Secret content the speakers last saw
	content string         // the Secret's content now
	writes  []string       // each write of the Secret, as fingerprints
	early   []string       // writes made while a speaker had not applied the last one
}

func fps(keys [][]byte) string {
	var out []string
	for _, k := range keys {
		out = append(out, memberkey.Fingerprint(k))
	}
	return strings.Join(out, ",")
}

func newRotationRig(t *testing.T, key []byte, lag map[string]int) *rotationRig {
	r := &rotationRig{t: t, clk: clocktesting.NewFakeClock(time.Unix(0, 0)), lag: lag, behind: map[string]int{}}
	kube := kubefake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "herald-system", Name: "herald-memberlist"},
		Data:       map[string][]byte{"key": []byte(base64.StdEncoding.EncodeToString(key) + "\n")},
	})
	var speakers []runtime.Object
	for _, n := range []string{"n1", "n2", "n3"} {
		speakers = append(speakers, &heraldv1.Speaker{ObjectMeta: metav1.ObjectMeta{Name: n}, Status: heraldv1.SpeakerStatus{
			LiveMembers: []string{"n1", "n2", "n3"}, MemberlistKeys: []string{memberkey.Fingerprint(key)}, MemberlistPrimaryKey: memberkey.Fingerprint(key),
		}})
	}
	// A Speaker of a node whose speaker is not running: never waited for.
	speakers = append(speakers, &heraldv1.Speaker{ObjectMeta: metav1.ObjectMeta{Name: "gone"}})
	herald := heraldfake.NewSimpleClientset(speakers...)
	// The reactor runs under the fake clientset's lock: it must not call
	// that clientset, so the rig keeps the Secret's content itself.
	kube.PrependReactor("update", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		s := a.(k8stesting.UpdateAction).GetObject().(*corev1.Secret)
		keys, err := memberkey.Parse(string(s.Data["key"]))
		if err != nil {
			t.Errorf("rotate-key wrote a Secret that does not parse: %v", err)
		}
		r.writes = append(r.writes, fps(keys))
		if lagging := r.lagging(); len(lagging) > 0 {
			r.early = append(r.early, fmt.Sprintf("write %d while %v had not applied the last", len(r.writes), lagging))
		}
		r.content = string(s.Data["key"])
		return false, nil, nil
	})
	r.c = &clients{kube: kube, herald: herald}
	r.content = base64.StdEncoding.EncodeToString(key) + "\n"
	r.seen = r.content
	return r
}

func (r *rotationRig) secretText() string { return r.content }

// lagging names the speakers whose status does not show the Secret.
func (r *rotationRig) lagging() []string {
	keys, _ := memberkey.Parse(r.secretText())
	var set []string
	for _, k := range keys {
		set = append(set, memberkey.Fingerprint(k))
	}
	slices.Sort(set)
	var out []string
	for _, n := range []string{"n1", "n2", "n3"} {
		sp, _ := r.c.herald.HeraldV1alpha1().Speakers().Get(context.Background(), n, metav1.GetOptions{})
		if sp.Status.MemberlistPrimaryKey != memberkey.Fingerprint(keys[0]) || !slices.Equal(sp.Status.MemberlistKeys, set) {
			out = append(out, n)
		}
	}
	return out
}

// poll is one poll interval: each speaker applies the Secret once its lag
// has passed.
func (r *rotationRig) poll() {
	text := r.secretText()
	if text != r.seen {
		r.seen, r.behind = text, map[string]int{}
	}
	keys, _ := memberkey.Parse(text)
	var set []string
	for _, k := range keys {
		set = append(set, memberkey.Fingerprint(k))
	}
	slices.Sort(set)
	for _, n := range []string{"n1", "n2", "n3"} {
		r.behind[n]++
		if r.lag[n] < 0 || r.behind[n] <= r.lag[n] {
			continue
		}
		sp, _ := r.c.herald.HeraldV1alpha1().Speakers().Get(context.Background(), n, metav1.GetOptions{})
		sp.Status.MemberlistKeys, sp.Status.MemberlistPrimaryKey = set, memberkey.Fingerprint(keys[0])
		if _, err := r.c.herald.HeraldV1alpha1().Speakers().UpdateStatus(context.Background(), sp, metav1.UpdateOptions{}); err != nil {
			r.t.Fatal(err)
		}
	}
}

// run runs rotate-key, stepping the fake clock whenever it waits.
func (r *rotationRig) run(o rotateOptions) (string, error) {
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- rotateKey(r.t.Context(), Env{Out: &out}, r.c, r.clk, o) }()
	for {
		select {
		case err := <-done:
			return out.String(), err
		default:
		}
		if r.clk.HasWaiters() {
			r.poll()
			r.clk.Step(rotatePoll)
			continue
		}
		time.Sleep(100 * time.Microsecond) // lets rotateKey's goroutine reach its next wait; asserts nothing
	}
}

func TestRotateKey(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	keyFile := filepath.Join(t.TempDir(), "new")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(k2)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := rotateOptions{namespace: "herald-system", secret: "herald-memberlist", keyFile: keyFile, timeout: time.Minute}

	t.Run("three steps, each after every speaker", func(t *testing.T) {
		r := newRotationRig(t, k1, map[string]int{"n1": 0, "n2": 1, "n3": 5})
		out, err := r.run(opts)
		if err != nil {
			t.Fatalf("rotate-key: %v\n%s", err, out)
		}
		want := []string{fps([][]byte{k1, k2}), fps([][]byte{k2, k1}), fps([][]byte{k2})}
		if !slices.Equal(r.writes, want) {
			t.Errorf("Secret writes %v; want %v", r.writes, want)
		}
		if len(r.early) > 0 {
			t.Errorf("rotate-key ran ahead of the speakers: %v", r.early)
		}
		if !strings.Contains(out, "step 3/3: all 3 speakers applied it") {
			t.Errorf("output does not report the last step for 3 speakers:\n%s", out)
		}
	})

	t.Run("a speaker that never follows stops it", func(t *testing.T) {
		r := newRotationRig(t, k1, map[string]int{"n1": 0, "n2": 0, "n3": -1})
		out, err := r.run(opts)
		if err == nil || !strings.Contains(err.Error(), "step 1 of 3") || !strings.Contains(err.Error(), "n3 has ["+memberkey.Fingerprint(k1)+"]") {
			t.Fatalf("rotate-key: %v; want step 1 to time out naming n3\n%s", err, out)
		}
		if len(r.writes) != 1 {
			t.Errorf("Secret written %d times; want once (step 1 only)", len(r.writes))
		}
		if got := r.clk.Since(time.Unix(0, 0)); got < time.Minute || got > time.Minute+2*rotatePoll {
			t.Errorf("gave up after %v; want the 1m timeout", got)
		}
	})

	t.Run("refuses a key already in the Secret", func(t *testing.T) {
		r := newRotationRig(t, k2, nil)
		if _, err := r.run(opts); err == nil || !strings.Contains(err.Error(), "already holds key") {
			t.Errorf("rotate-key to the current key: %v; want refused", err)
		}
		if len(r.writes) != 0 {
			t.Errorf("Secret written %d times; want never", len(r.writes))
		}
	})
}
