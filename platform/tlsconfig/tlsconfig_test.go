package tlsconfig_test

import (
	"crypto/tls"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hirez-ml/hirez/platform/tlsconfig"
	"github.com/hirez-ml/hirez/platform/tlsconfig/tlstest"
)

func TestServer(t *testing.T) {
	pki := tlstest.New(t)
	tests := []struct {
		name            string
		cert, key, ca   string
		wantErr         string // "" for success
		wantClientCerts bool
	}{
		{"tls", pki.ServerCert, pki.ServerKey, "", "", false},
		{"mtls", pki.ServerCert, pki.ServerKey, pki.CA, "", true},
		{"no key", pki.ServerCert, "", "", "both required", false},
		{"key mismatch", pki.ServerCert, pki.ClientKey, "", pki.ClientKey, false},
		{"ca not pem", pki.ServerCert, pki.ServerKey, pki.ServerKey, "no PEM certificates in CA file " + pki.ServerKey, false},
		{"ca missing", pki.ServerCert, pki.ServerKey, "/nonexistent/ca.pem", "/nonexistent/ca.pem", false},
		{"cert missing", "/nonexistent/cert.pem", pki.ServerKey, "", "/nonexistent/cert.pem", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tlsconfig.Server(tt.cert, tt.key, tt.ca)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion %x", cfg.MinVersion)
			}
			inner, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
			if err != nil {
				t.Fatal(err)
			}
			if got := inner.ClientAuth == tls.RequireAndVerifyClientCert; got != tt.wantClientCerts {
				t.Errorf("RequireAndVerifyClientCert = %v, want %v", got, tt.wantClientCerts)
			}
			if len(inner.Certificates) != 1 || inner.MinVersion != tls.VersionTLS12 || len(inner.NextProtos) != 1 {
				t.Errorf("per-handshake config %+v", inner)
			}
		})
	}
}

func TestClient(t *testing.T) {
	pki := tlstest.New(t)
	files, err := tlsconfig.Client(pki.CA, pki.ClientCert, pki.ClientKey, "hirez")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := files.Config(); cfg.MinVersion != tls.VersionTLS12 || len(cfg.Certificates) != 1 || cfg.RootCAs == nil || cfg.ServerName != "hirez" {
		t.Errorf("config %+v", cfg)
	}
	if _, err := tlsconfig.Client("", pki.ClientCert, "", ""); err == nil {
		t.Error("cert without key accepted")
	}
	if _, err := tlsconfig.Client(pki.CA, pki.ClientCert, pki.ServerKey, ""); err == nil || !strings.Contains(err.Error(), pki.ClientCert) {
		t.Errorf("mismatched client pair: %v, want an error naming %s", err, pki.ClientCert)
	}
	// No CA: the system roots, verified by crypto/tls itself.
	files, err = tlsconfig.Client("", "", "", "")
	if err != nil || files.Config().RootCAs != nil || files.Config().InsecureSkipVerify {
		t.Errorf("system roots config %+v, %v", files, err)
	}
}

// tlsServer accepts TLS connections on loopback with cfg and answers each
// handshake by closing the connection; it returns the address.
func tlsServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				// Hold the connection until the client hangs up, so its
				// handshake (TLS 1.3 sends the client's certificate last) ends.
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			}()
		}
	}()
	return lis.Addr().String()
}

// serial dials addr with cfg and returns the serial of the certificate the
// server presented.
func serial(t *testing.T, addr string, files *tlsconfig.ClientFiles) (*big.Int, error) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, files.Config())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// The server's verdict on the client's certificate arrives with the first read.
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestRotation(t *testing.T) {
	pki := tlstest.New(t)
	first, second := pki.Server(t, "first"), pki.Server(t, "second")
	srvDir := pki.SecretDir(t, first)
	core, logs := observer.New(zap.InfoLevel)
	srvCfg, err := tlsconfig.Server(filepath.Join(srvDir, "tls.crt"), filepath.Join(srvDir, "tls.key"), filepath.Join(srvDir, "ca.crt"),
		tlsconfig.WithLogger(zap.New(core)))
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServer(t, srvCfg)
	cliDir := pki.SecretDir(t, pki.Client(t, "gateway"))
	cliCfg, err := tlsconfig.Client(filepath.Join(cliDir, "ca.crt"), filepath.Join(cliDir, "tls.crt"), filepath.Join(cliDir, "tls.key"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	want := func(step string, p tlstest.Pair) {
		t.Helper()
		got, err := serial(t, addr, cliCfg)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if got.Cmp(p.Serial) != 0 {
			t.Fatalf("%s: server presented serial %v, want %v", step, got, p.Serial)
		}
	}
	refused := func(step string) {
		t.Helper()
		if _, err := serial(t, addr, cliCfg); err == nil {
			t.Fatalf("%s: handshake succeeded", step)
		}
	}

	want("before rotation", first)
	tlstest.Swap(t, srvDir, map[string][]byte{"tls.crt": second.Cert, "tls.key": second.Key})
	want("after the kubelet-style swap", second)
	if logs.FilterMessage("reloaded TLS files").Len() != 1 {
		t.Errorf("reload not logged once: %v", logs.All())
	}

	// A half-done rotation: the new certificate with the old key.
	third := pki.Server(t, "third")
	tlstest.Swap(t, srvDir, map[string][]byte{"tls.crt": third.Cert})
	want("after a mismatched key pair", second)
	want("again (logged once)", second)
	bad := logs.FilterMessageSnippet("do not load")
	if bad.Len() != 1 || !strings.Contains(bad.All()[0].ContextMap()["error"].(string), "tls.crt") {
		t.Errorf("bad replacement logged %d times: %v", bad.Len(), bad.All())
	}
	// The key arrives: the pair loads.
	tlstest.Swap(t, srvDir, map[string][]byte{"tls.key": third.Key})
	want("once the key arrived", third)

	// A truncated certificate (half-written file in place, no swap).
	if err := os.WriteFile(filepath.Join(srvDir, "tls.crt"), third.Cert[:len(third.Cert)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	want("after a truncated certificate", third)
	// A CA file that is not PEM: still the old pool, clients still accepted.
	tlstest.Swap(t, srvDir, map[string][]byte{"tls.crt": third.Cert, "ca.crt": []byte("not PEM")})
	want("after a broken CA", third)
	// A files' removal keeps the last good state too.
	tlstest.Swap(t, srvDir, map[string][]byte{})
	if err := os.Remove(filepath.Join(srvDir, "..data", "tls.key")); err != nil {
		t.Fatal(err)
	}
	want("after the key vanished", third)
	tlstest.Swap(t, srvDir, map[string][]byte{"tls.key": third.Key, "ca.crt": pki.CAPEM()})
	want("repaired", third)

	// The server's client CA rotates to another PKI: this client is refused.
	tlstest.Swap(t, srvDir, map[string][]byte{"ca.crt": pki.OtherCAPEM()})
	refused("server trusts another CA")
	tlstest.Swap(t, srvDir, map[string][]byte{"ca.crt": pki.CAPEM()})
	want("server trusts our CA again", third)

	// The client's CA rotates: it no longer trusts the server.
	tlstest.Swap(t, cliDir, map[string][]byte{"ca.crt": pki.OtherCAPEM()})
	refused("client trusts another CA")
	tlstest.Swap(t, cliDir, map[string][]byte{"ca.crt": pki.CAPEM()})
	want("client trusts our CA again", third)
}

func TestClientVerifiesServerName(t *testing.T) {
	pki := tlstest.New(t)
	srvCfg, err := tlsconfig.Server(pki.ServerCert, pki.ServerKey, "")
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServer(t, srvCfg)
	for _, tt := range []struct {
		name, ca string
		ok       bool
	}{
		{"127.0.0.1", pki.CA, true},
		{"localhost", pki.CA, true},
		{"generator", pki.CA, false}, // not in the certificate
		{"127.0.0.1", pki.OtherCA, false},
	} {
		cfg, err := tlsconfig.Client(tt.ca, "", "", tt.name)
		if err != nil {
			t.Fatal(err)
		}
		_, err = serial(t, addr, cfg)
		if (err == nil) != tt.ok {
			t.Errorf("server name %s, CA %s: %v, want ok %v", tt.name, filepath.Base(tt.ca), err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error %v does not say what failed", err)
		}
	}
}
