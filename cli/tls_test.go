package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths; the certificate is its own CA.
func selfSigned(t *testing.T) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gather test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, key
}

// TestTLS serves the API over HTTPS with a token and the NATS port over
// TLS with a user and password; submit and worker trust the certificate
// through --ca and --nats-ca.
func TestTLS(t *testing.T) {
	t.Parallel()
	cert, key := selfSigned(t)
	s := startServe(t, "--workers", "0", "--tls-cert", cert, "--tls-key", key, "--token", "api",
		"--nats-listen", "127.0.0.1:0", "--nats-tls-cert", cert, "--nats-tls-key", key, "--nats-user", "w", "--nats-password", "pw")
	if !strings.HasPrefix(s.http, "https://") {
		t.Fatalf("API URL %q", s.http)
	}
	worker := startWorker(t, "--nats", s.nats, "--nats-ca", cert, "--nats-user", "w", "--nats-password", "pw", "--concurrency", "1")
	code, out, errOut := run(t, "", "submit", "--server", s.http, "--ca", cert, "--token", "api", "--kind", "echo", "--args", "x")
	if code != 0 || out != "\"x\"\n" {
		t.Fatalf("submit over TLS: exit %d, %q, %q", code, out, errOut)
	}
	code, _, errOut = run(t, "", "submit", "--server", s.http, "--token", "api", "--kind", "echo", "--args", "x")
	if code != 2 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("submit without the CA: exit %d, %q", code, errOut)
	}
	code, _, errOut = run(t, "", "submit", "--server", s.http, "--ca", cert, "--kind", "echo", "--args", "x")
	if code != 2 || !strings.Contains(errOut, "401 unauthorized") {
		t.Fatalf("submit without the token: exit %d, %q", code, errOut)
	}
	code, _, errOut = run(t, "", "worker", "--nats", s.nats, "--nats-user", "w", "--nats-password", "pw")
	if code != 2 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("worker without the CA: exit %d, %q", code, errOut)
	}
	if code := worker(); code != 0 {
		t.Fatalf("worker exit %d", code)
	}
}
