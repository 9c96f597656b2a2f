package memberkey

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

func TestParse(t *testing.T) {
	k1, k2, k3 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16), bytes.Repeat([]byte{3}, 24)
	tests := []struct {
		name, text string
		want       [][]byte
		err        string
	}{
		{"one key, as the first release wrote it", b64(k1) + "\n", [][]byte{k1}, ""},
		{"one key, no newline", b64(k1), [][]byte{k1}, ""},
		{"lines", b64(k1) + "\n" + b64(k2) + "\n", [][]byte{k1, k2}, ""},
		{"spaces and commas", "  " + b64(k2) + ", " + b64(k1) + "\t" + b64(k3), [][]byte{k2, k1, k3}, ""},
		{"CRLF", b64(k1) + "\r\n" + b64(k2) + "\r\n", [][]byte{k1, k2}, ""},
		{"duplicate keeps its first place", b64(k2) + " " + b64(k1) + " " + b64(k2), [][]byte{k2, k1}, ""},
		{"empty", " \n", nil, "no memberlist key"},
		{"not base64", b64(k1) + " %%%", nil, "memberlist key 2 is not base64"},
		{"wrong length", b64(k1) + " " + b64(make([]byte, 20)), nil, "memberlist key 2 (" + Fingerprint(make([]byte, 20)) + ") is 20 bytes"},
		{"too many", strings.Repeat(b64(k1)+" ", 1) + b64(k2) + " " + b64(k3) + " " + b64(bytes.Repeat([]byte{4}, 16)) + " " + b64(bytes.Repeat([]byte{5}, 16)), nil, "5 memberlist keys; at most 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.text)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse: %v; want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Parse: %d keys; want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("key %d = %x; want %x", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestFormatParses(t *testing.T) {
	keys := [][]byte{bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{8}, 16)}
	got, err := Parse(Format(keys))
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], keys[0]) || !bytes.Equal(got[1], keys[1]) {
		t.Errorf("Parse(Format(keys)) = %x, %v", got, err)
	}
}

// TestFingerprint pins the fingerprint: Speaker objects, heraldctl and the
// shell recipe in docs/install.md must agree on it.
func TestFingerprint(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	sum := sha256.Sum256(key)
	if got, want := Fingerprint(key), hex.EncodeToString(sum[:])[:16]; got != want {
		t.Errorf("Fingerprint = %s; want %s", got, want)
	}
	if got := Fingerprint(key); got != "72cd6e8422c407fb" {
		t.Errorf("Fingerprint of 32 bytes of 1 = %s; want 72cd6e8422c407fb", got)
	}
}
