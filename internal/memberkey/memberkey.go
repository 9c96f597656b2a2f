package memberkey

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// SecretKey is the entry of the memberlist Secret that holds the keys.
const SecretKey = "key"

// MaxKeys bounds the keys a Secret may list: a rotation needs two, and
// every key costs a decryption attempt for each packet that the keys
// before it fail to open.
const MaxKeys = 4

// Parse reads a Secret's key list: base64 keys of 16, 24 or 32 bytes,
// separated by white space or commas, the first the one that encrypts.
// A key listed twice counts once, in its first place.
func Parse(text string) ([][]byte, error) {
	fields := strings.FieldsFunc(text, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	if len(fields) == 0 {
		return nil, errors.New("no memberlist key")
	}
	var keys [][]byte
	seen := map[string]bool{}
	for i, f := range fields {
		k, err := base64.StdEncoding.DecodeString(f)
		if err != nil {
			return nil, fmt.Errorf("memberlist key %d is not base64: %w", i+1, err)
		}
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("memberlist key %d (%s) is %d bytes; want 16, 24 or 32", i+1, Fingerprint(k), n)
		}
		if !seen[string(k)] {
			seen[string(k)] = true
			keys = append(keys, k)
		}
	}
	if len(keys) > MaxKeys {
		return nil, fmt.Errorf("%d memberlist keys; at most %d", len(keys), MaxKeys)
	}
	return keys, nil
}

// Format writes keys as a Secret's key list, one per line, first first.
func Format(keys [][]byte) string {
	lines := make([]string, len(keys))
	for i, k := range keys {
		lines[i] = base64.StdEncoding.EncodeToString(k)
	}
	return strings.Join(lines, "\n") + "\n"
}

// FingerprintLen is the length of a fingerprint in bytes (twice that in
// hex): enough that two random keys never share one in practice, short
// enough to read in `kubectl get speakers`.
const FingerprintLen = 8

// Fingerprints is the Fingerprint of each key, in order (nil for none).
func Fingerprints(keys [][]byte) []string {
	if len(keys) == 0 {
		return nil
	}
	fps := make([]string, len(keys))
	for i, k := range keys {
		fps[i] = Fingerprint(k)
	}
	return fps
}

// Fingerprint names key without revealing it: the first FingerprintLen
// bytes of its SHA-256, in lower-case hex. The same as
// `base64 -d | sha256sum | cut -c1-16` on the key's base64.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:FingerprintLen])
}
