package speaker

import (
	"bytes"
	"context"
	"encoding/base64"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/heraldlb/herald/internal/memberkey"
)

// recordingKeys records every key list it is given, by fingerprint.
type recordingKeys struct {
	mu   sync.Mutex
	sets [][]string
}

func (r *recordingKeys) SetKeys(keys [][]byte) error {
	fps := make([]string, len(keys))
	for i, k := range keys {
		fps[i] = memberkey.Fingerprint(k)
	}
	r.mu.Lock()
	r.sets = append(r.sets, fps)
	r.mu.Unlock()
	return nil
}

func (r *recordingKeys) got() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sets)
}

// TestWatchKeys: the key list of the named Secret reaches the membership
// on start and on every change; a list that does not parse, another
// Secret and an unchanged list do not.
func TestWatchKeys(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	fp1, fp2 := memberkey.Fingerprint(k1), memberkey.Fingerprint(k2)
	secret := func(name, text string) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "herald-system", Name: name},
			Data:       map[string][]byte{memberkey.SecretKey: []byte(text)},
		}
	}
	kube := kubefake.NewClientset(secret("herald-memberlist", base64.StdEncoding.EncodeToString(k1)+"\n"))
	rec := &recordingKeys{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchKeys(ctx, kube, "herald-system", "herald-memberlist", rec, nil)
	}()
	defer func() { cancel(); <-done }()

	waitSets := func(want ...[]string) {
		t.Helper()
		// The informer delivers asynchronously; this bounds a broken test.
		err := wait.PollUntilContextTimeout(t.Context(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			return len(rec.got()) >= len(want), nil
		})
		if got := rec.got(); err != nil || !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("key lists handed on: %v; want %v", got, want)
		}
	}
	waitSets([]string{fp1})

	update := func(s *corev1.Secret) {
		t.Helper()
		if _, err := kube.CoreV1().Secrets("herald-system").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kube.CoreV1().Secrets("herald-system").Create(ctx, secret("other", base64.StdEncoding.EncodeToString(k2)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	update(secret("herald-memberlist", "not base64!"))
	update(secret("herald-memberlist", base64.StdEncoding.EncodeToString(k1)+" "+base64.StdEncoding.EncodeToString(k2)))
	waitSets([]string{fp1}, []string{fp1, fp2})
	update(secret("herald-memberlist", base64.StdEncoding.EncodeToString(k2)))
	waitSets([]string{fp1}, []string{fp1, fp2}, []string{fp2})
}
