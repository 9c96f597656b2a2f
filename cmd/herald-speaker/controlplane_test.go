package main

import (
	"context"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/memberkey"
)

// TestWatchKeyFile: a changed key file is applied; an unusable one and an
// unchanged one are not.
func TestWatchKeyFile(t *testing.T) {
	k1, k2 := make([]byte, 32), make([]byte, 16)
	k1[0], k2[0] = 1, 2
	b64 := func(k []byte) string { return base64.StdEncoding.EncodeToString(k) }
	path := filepath.Join(t.TempDir(), "key")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(b64(k1))
	applied := make(chan []string, 10)
	set := func(keys [][]byte) error { applied <- memberkey.Fingerprints(keys); return nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		watchKeyFile(ctx, path, 10*time.Millisecond, [][]byte{k1}, set, slog.New(slog.DiscardHandler))
		close(done)
	}()
	defer func() { cancel(); <-done }()
	expectNone := func(why string) {
		t.Helper()
		select {
		case got := <-applied:
			t.Fatalf("%s: applied %v", why, got)
		case <-time.After(100 * time.Millisecond):
		}
	}
	expectNone("unchanged file")
	write("not a key")
	expectNone("unusable file")
	write(b64(k2) + "," + b64(k1))
	select {
	case got := <-applied:
		if want := memberkey.Fingerprints([][]byte{k2, k1}); !slices.Equal(got, want) {
			t.Errorf("applied %v, want %v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a new key list was not applied")
	}
	expectNone("the same list again")
}
