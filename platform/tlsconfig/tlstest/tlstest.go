// Package tlstest writes real throwaway PKIs for tests: a CA, a server
// certificate for 127.0.0.1 and localhost, a client certificate, a second CA
// that signed nothing, more certificates from the same CA on demand, and
// directories laid out the way the kubelet mounts a Secret (files behind a
// "..data" symlink that a rotation swaps in one rename).
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Files are the PEM file paths of a generated PKI.
type Files struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	// OtherCA is a CA that signed nothing here, for negative tests.
	OtherCA string
	// OtherClientCert and OtherClientKey are a client certificate signed by
	// OtherCA: a client of the wrong PKI.
	OtherClientCert, OtherClientKey string

	dir             string
	caCert, otherCA *x509.Certificate
	caKey, otherKey *ecdsa.PrivateKey
}

// Pair is a certificate and its key as PEM bytes.
type Pair struct {
	Cert, Key []byte
	// Serial is the certificate's serial number, to tell certificates apart.
	Serial *big.Int
}

// New generates the PKI into t.TempDir().
func New(t testing.TB) Files {
	t.Helper()
	dir := t.TempDir()
	caCert, caKey := issue(t, nil, nil, caTemplate("hirez test CA"))
	otherCA, otherKey := issue(t, nil, nil, caTemplate("other CA"))
	f := Files{
		CA: filepath.Join(dir, "ca.pem"), OtherCA: filepath.Join(dir, "other-ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
		OtherClientCert: filepath.Join(dir, "other-client.pem"), OtherClientKey: filepath.Join(dir, "other-client-key.pem"),
		dir: dir, caCert: caCert, caKey: caKey, otherCA: otherCA, otherKey: otherKey,
	}
	writeFile(t, f.CA, certPEM(caCert))
	writeFile(t, f.OtherCA, certPEM(otherCA))
	f.writePair(t, f.ServerCert, f.ServerKey, f.Server(t, "hirez server"))
	f.writePair(t, f.ClientCert, f.ClientKey, f.Client(t, "hirez gateway"))
	cli, cliKey := issue(t, otherCA, otherKey, clientTemplate("intruder"))
	f.writePair(t, f.OtherClientCert, f.OtherClientKey, pair(t, cli, cliKey))
	return f
}

// Server issues another server certificate from the CA, for 127.0.0.1 and
// localhost, usable as a client certificate too (like one a pod presents both ways).
func (f Files) Server(t testing.TB, commonName string) Pair {
	t.Helper()
	c, k := issue(t, f.caCert, f.caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	return pair(t, c, k)
}

// Client issues another client certificate from the CA.
func (f Files) Client(t testing.TB, commonName string) Pair {
	t.Helper()
	c, k := issue(t, f.caCert, f.caKey, clientTemplate(commonName))
	return pair(t, c, k)
}

// SecretDir writes p and the CA as a mounted kubernetes.io/tls Secret would
// appear: dir/tls.crt, dir/tls.key and dir/ca.crt are symlinks into
// dir/..data, itself a symlink to a timestamped directory. It returns dir.
func (f Files) SecretDir(t testing.TB, p Pair) string {
	t.Helper()
	dir, err := os.MkdirTemp(f.dir, "secret-")
	if err != nil {
		t.Fatal(err)
	}
	Swap(t, dir, map[string][]byte{"tls.crt": p.Cert, "tls.key": p.Key, "ca.crt": certPEM(f.caCert)})
	for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Swap replaces the contents of a SecretDir the way the kubelet updates a
// mounted Secret: the new files go into a fresh timestamped directory and a
// rename moves the "..data" symlink onto it, so a reader sees the old set or
// the new set, never a mix. Names not in files keep their old content.
func Swap(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	ts := filepath.Join(dir, fmt.Sprintf("..%d", time.Now().UnixNano()))
	if err := os.Mkdir(ts, 0o700); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		entries, err := os.ReadDir(filepath.Join(dir, old))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, old, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(ts, e.Name()), b)
		}
	}
	for name, b := range files {
		writeFile(t, filepath.Join(ts, name), b)
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// CAPEM returns the CA certificate as PEM.
func (f Files) CAPEM() []byte { return certPEM(f.caCert) }

// OtherCAPEM returns the other CA's certificate as PEM.
func (f Files) OtherCAPEM() []byte { return certPEM(f.otherCA) }

func (f Files) writePair(t testing.TB, certPath, keyPath string, p Pair) {
	t.Helper()
	writeFile(t, certPath, p.Cert)
	writeFile(t, keyPath, p.Key)
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
}

func clientTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:  pkix.Name{CommonName: cn},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

func issue(t testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, big.NewInt(1<<62)); err != nil {
		t.Fatal(err)
	}
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func pair(t testing.TB, c *x509.Certificate, k *ecdsa.PrivateKey) Pair {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return Pair{Cert: certPEM(c), Key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), Serial: c.SerialNumber}
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
