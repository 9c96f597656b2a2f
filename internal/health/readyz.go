package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
)

// Readyz returns a check of a kube-apiserver's /readyz at url, trusting
// only the CA in caFile (kubeadm's /etc/kubernetes/pki/ca.crt): nil while
// it answers 200. /readyz is readable without credentials (the
// system:public-info-viewer role), so the check needs none. The
// connection is kept alive between checks; a killed API server fails the
// next check at once.
func Readyz(url, caFile string) (func(ctx context.Context) error, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("reading the API server's CA: no certificate in %s", caFile)
	}
	hc := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Proxy:             nil, // the node's own API server: never through a proxy
		ForceAttemptHTTP2: false,
		MaxIdleConns:      1,
	}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s: %s", url, resp.Status, body)
		}
		return nil
	}, nil
}
