package bgp

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

func TestSlogAdapter(t *testing.T) {
	var buf bytes.Buffer
	a := newSlogAdapter(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	a.Info("Peer Up", gobgplog.Fields{"Topic": "Peer", "Key": "192.0.2.1", "Err": errors.New("boom")})
	a.Debug("dropped", gobgplog.Fields{"Topic": "Peer"})
	a.Fatal("not fatal here", nil)

	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("bad JSON %q: %v", l, err)
		}
		delete(m, "time")
		lines = append(lines, m)
	}
	want := []map[string]any{
		{"level": "INFO", "msg": "Peer Up", "topic": "Peer", "key": "192.0.2.1", "err": "boom"},
		{"level": "ERROR", "msg": "not fatal here"},
	}
	if d := cmp.Diff(want, lines); d != "" {
		t.Errorf("log lines (-want +got):\n%s", d)
	}
	if got := a.GetLevel(); got != gobgplog.InfoLevel {
		t.Errorf("GetLevel() = %v, want InfoLevel (handler at info)", got)
	}
	a.SetLevel(gobgplog.WarnLevel)
	if got := a.GetLevel(); got != gobgplog.WarnLevel {
		t.Errorf("GetLevel() after SetLevel(Warn) = %v", got)
	}
}
