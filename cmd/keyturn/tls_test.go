package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server"
)

// selfSigned writes a certificate for 127.0.0.1 and its key; it returns
// their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keyturn test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeTLS: with tls.cert_file and tls.key_file, serve speaks only
// TLS (1.2 at least), and the endpoints answer over it.
func TestServeTLS(t *testing.T) {
	c := newCLI(t, "")
	certFile, keyFile, pool := selfSigned(t)
	c.env["KEYTURN_TLS_CERT_FILE"] = certFile
	c.env["KEYTURN_TLS_KEY_FILE"] = keyFile
	c.env["KEYTURN_ISSUER"] = "https://127.0.0.1"
	_, stderr, stop := c.start("serve")
	defer stop()
	listening := regexp.MustCompile(`(?m)^\{.*"msg":"listening".*\}$`)
	line := listening.FindString(stderr.waitFor(t, "the listening log line", listening.MatchString))
	var entry struct {
		Addr string
		TLS  bool
	}
	if err := json.Unmarshal([]byte(line), &entry); err != nil || !entry.TLS {
		t.Fatalf("listening line %q: %v", line, err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + entry.Addr + server.PathMetadata)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("https: %d %+v", resp.StatusCode, resp.TLS)
	}
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Get("https://" + entry.Addr + server.PathMetadata); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
	if resp, err := http.Get("http://" + entry.Addr + server.PathMetadata); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS port")
		}
	}
	if code := stop(); code != exitOK {
		t.Fatalf("serve exited %d", code)
	}
}

func TestServeTLSBadFiles(t *testing.T) {
	c := newCLI(t, "")
	c.env["KEYTURN_TLS_CERT_FILE"] = filepath.Join(c.dir, "missing.crt")
	c.env["KEYTURN_TLS_KEY_FILE"] = filepath.Join(c.dir, "missing.key")
	r := c.want(exitUsage, "", "serve")
	if !strings.Contains(r.stderr, "tls:") {
		t.Fatalf("stderr %q", r.stderr)
	}
}
