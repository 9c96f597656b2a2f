package health

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadyz(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready.Load() {
			http.Error(w, "[-]etcd failed", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	check, err := Readyz(srv.URL+"/readyz", ca)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(t.Context()); err == nil {
		t.Error("a 500 from /readyz passed the check")
	}
	ready.Store(true)
	if err := check(t.Context()); err != nil {
		t.Errorf("a ready API server failed the check: %v", err)
	}
	srv.Close()
	if err := check(t.Context()); err == nil {
		t.Error("a stopped API server passed the check")
	}

	// Another CA: the server's certificate is not trusted.
	otherCA := filepath.Join(t.TempDir(), "other.crt")
	if err := os.WriteFile(otherCA, selfSigned(t), 0o600); err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv2.Close()
	check2, err := Readyz(srv2.URL+"/readyz", otherCA)
	if err != nil {
		t.Fatal(err)
	}
	if err := check2(t.Context()); err == nil {
		t.Error("a server whose certificate the CA did not sign passed the check")
	}

	if _, err := Readyz(srv.URL, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing CA file was accepted")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	_ = os.WriteFile(empty, []byte("not a certificate"), 0o600)
	if _, err := Readyz(srv.URL, empty); err == nil {
		t.Error("a CA file without a certificate was accepted")
	}
}

// selfSigned is the PEM of a fresh self-signed CA certificate.
func selfSigned(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
