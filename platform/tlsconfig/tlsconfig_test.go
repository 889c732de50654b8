package tlsconfig_test

import (
	"crypto/tls"
	"testing"

	"github.com/hirez-ml/hirez/platform/internal/testpki"
	"github.com/hirez-ml/hirez/platform/tlsconfig"
)

func TestServer(t *testing.T) {
	pki := testpki.New(t)
	tests := []struct {
		name            string
		cert, key, ca   string
		ok              bool
		wantClientCerts bool
	}{
		{"tls", pki.ServerCert, pki.ServerKey, "", true, false},
		{"mtls", pki.ServerCert, pki.ServerKey, pki.CA, true, true},
		{"no key", pki.ServerCert, "", "", false, false},
		{"key mismatch", pki.ServerCert, pki.ClientKey, "", false, false},
		{"ca not pem", pki.ServerCert, pki.ServerKey, pki.ServerKey, false, false},
		{"ca missing", pki.ServerCert, pki.ServerKey, "/nonexistent", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tlsconfig.Server(tt.cert, tt.key, tt.ca)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if err != nil {
				return
			}
			if cfg.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion %x", cfg.MinVersion)
			}
			if got := cfg.ClientAuth == tls.RequireAndVerifyClientCert; got != tt.wantClientCerts {
				t.Errorf("RequireAndVerifyClientCert = %v, want %v", got, tt.wantClientCerts)
			}
		})
	}
}

func TestClient(t *testing.T) {
	pki := testpki.New(t)
	cfg, err := tlsconfig.Client(pki.CA, pki.ClientCert, pki.ClientKey, "hirez")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || len(cfg.Certificates) != 1 || cfg.RootCAs == nil || cfg.ServerName != "hirez" {
		t.Errorf("config %+v", cfg)
	}
	if _, err := tlsconfig.Client("", pki.ClientCert, "", ""); err == nil {
		t.Error("cert without key accepted")
	}
}
