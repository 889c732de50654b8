// Package tlsconfig builds *tls.Config values for hirez servers and clients from
// PEM files, with TLS 1.2 as the floor and mutual TLS when a CA is given.
//
// The files are re-read when they change, so certificates rotate without a
// restart: each handshake first stats them (following symlinks, the way a
// mounted Kubernetes Secret swaps its "..data" link), and only a changed file
// is read and parsed again. A replacement that does not load (half written, a
// key that does not match, no PEM in the CA file) is logged once, naming the
// file, and the last good certificate and CA keep being used; the first load,
// at start-up, fails loudly instead. Connections already open are never
// touched: a rotation takes effect at the next handshake.
package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Option configures Server and Client.
type Option func(*options)

type options struct{ log *zap.Logger }

// WithLogger logs reloads (Info) and replacements that did not load (Error).
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

func build(opts []Option) options {
	o := options{log: zap.NewNop()}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// alpnH2 is what gRPC negotiates. A config returned by GetConfigForClient
// replaces the one credentials.NewTLS added "h2" to, so it says so itself.
var alpnH2 = []string{"h2"}

// Server returns a server config presenting certFile/keyFile. When clientCAFile
// is not empty, clients must present a certificate signed by that CA (mTLS).
// All three files are reloaded when they change (see the package doc).
func Server(certFile, keyFile, clientCAFile string, opts ...Option) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: certificate and key files are both required")
	}
	r, err := newReloader(certFile, keyFile, clientCAFile, "server", "", build(opts).log)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.current().server, nil
		},
	}
	if clientCAFile != "" {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert // as the per-handshake configs say
	}
	return cfg, nil
}

// ClientFiles is a client's TLS configuration from PEM files, reloaded when
// they change (see the package doc). Config returns the one to use for the
// next handshake; a dialer calls it per connection (package client does).
type ClientFiles struct {
	r   *reloader // nil: nothing to reload (system roots, no certificate)
	cfg *tls.Config
}

// Client returns a client configuration that verifies the server against
// caFile (the system roots when empty) and, when certFile/keyFile are given,
// presents that certificate for mTLS. serverName overrides the name checked in
// the server's certificate (empty: the host of the dial target). The first
// load happens here, and its errors name the file.
func Client(caFile, certFile, keyFile, serverName string, opts ...Option) (*ClientFiles, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("tls: client certificate and key files must be given together")
	}
	if caFile == "" && certFile == "" {
		return &ClientFiles{cfg: &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}}, nil
	}
	r, err := newReloader(certFile, keyFile, caFile, "client", serverName, build(opts).log)
	if err != nil {
		return nil, err
	}
	return &ClientFiles{r: r}, nil
}

// Config returns the configuration of the moment, reloading the files first
// when one changed. The caller must not modify it (clone it first).
func (c *ClientFiles) Config() *tls.Config {
	if c.r == nil {
		return c.cfg
	}
	return c.r.current().client
}

// state is one loaded set of files; never changed once published.
type state struct {
	cert   *tls.Certificate // nil without a key pair
	pool   *x509.CertPool   // nil without a CA file
	server *tls.Config      // the server's per-handshake config (Server only)
	client *tls.Config      // the client's per-handshake config (Client only)
}

// stamp identifies a file's content without reading it: a kubelet swap makes
// a new file (another inode), an edit in place changes mtime or size.
type stamp struct {
	info os.FileInfo
	err  string
}

func (s stamp) same(o stamp) bool {
	if s.info == nil || o.info == nil {
		return s.info == nil && o.info == nil && s.err == o.err
	}
	return os.SameFile(s.info, o.info) && s.info.ModTime().Equal(o.info.ModTime()) && s.info.Size() == o.info.Size()
}

func stat(path string) stamp {
	if path == "" {
		return stamp{}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{err: err.Error()}
	}
	return stamp{info: fi}
}

// reloader holds the files' last good state and reloads it when a stat
// shows a change.
type reloader struct {
	certFile, keyFile, caFile string
	role                      string // "server" or "client", in logs
	serverName                string // Client's serverName
	log                       *zap.Logger

	mu        sync.Mutex
	seen      [3]stamp // stamps at the last check, loaded or not
	certPEM   []byte   // contents of the last good state
	keyPEM    []byte
	caPEM     []byte
	cur       *state
	lastError string // the last failure logged, so one bad file logs once
}

func newReloader(certFile, keyFile, caFile, role, serverName string, log *zap.Logger) (*reloader, error) {
	r := &reloader{certFile: certFile, keyFile: keyFile, caFile: caFile, role: role, serverName: serverName, log: log}
	r.seen = r.stamps()
	st, certPEM, keyPEM, caPEM, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur, r.certPEM, r.keyPEM, r.caPEM = st, certPEM, keyPEM, caPEM
	return r, nil
}

func (r *reloader) stamps() [3]stamp {
	return [3]stamp{stat(r.certFile), stat(r.keyFile), stat(r.caFile)}
}

// current returns the state to use for a handshake, reloading first when a
// file changed since the last check.
func (r *reloader) current() *state {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.stamps()
	if now[0].same(r.seen[0]) && now[1].same(r.seen[1]) && now[2].same(r.seen[2]) {
		return r.cur
	}
	r.seen = now
	st, certPEM, keyPEM, caPEM, err := r.load()
	if err != nil {
		if msg := err.Error(); msg != r.lastError {
			r.lastError = msg
			r.log.Error("TLS files changed but do not load; still using the previous certificate and CA",
				zap.String("role", r.role), zap.Error(err))
		}
		return r.cur
	}
	r.lastError = ""
	if bytes.Equal(certPEM, r.certPEM) && bytes.Equal(keyPEM, r.keyPEM) && bytes.Equal(caPEM, r.caPEM) {
		return r.cur // touched, same content
	}
	r.cur, r.certPEM, r.keyPEM, r.caPEM = st, certPEM, keyPEM, caPEM
	fields := []zap.Field{zap.String("role", r.role)}
	if st.cert != nil && st.cert.Leaf != nil {
		fields = append(fields, zap.String("cert", r.certFile), zap.String("serial", st.cert.Leaf.SerialNumber.String()),
			zap.Time("not_after", st.cert.Leaf.NotAfter))
	}
	if r.caFile != "" {
		fields = append(fields, zap.String("ca", r.caFile))
	}
	r.log.Info("reloaded TLS files", fields...)
	return r.cur
}

// load reads and parses every file; errors name the file.
func (r *reloader) load() (st *state, certPEM, keyPEM, caPEM []byte, err error) {
	st = &state{}
	if r.certFile != "" {
		if certPEM, err = os.ReadFile(r.certFile); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("tls: read certificate: %w", err)
		}
		if keyPEM, err = os.ReadFile(r.keyFile); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("tls: read key: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("tls: load %s key pair %s, %s: %w", r.role, r.certFile, r.keyFile, err)
		}
		if cert.Leaf != nil && time.Now().After(cert.Leaf.NotAfter) {
			return nil, nil, nil, nil, fmt.Errorf("tls: %s certificate %s expired at %s", r.role, r.certFile, cert.Leaf.NotAfter.Format(time.RFC3339))
		}
		st.cert = &cert
	}
	if r.caFile != "" {
		if caPEM, err = os.ReadFile(r.caFile); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("tls: read CA: %w", err)
		}
		st.pool = x509.NewCertPool()
		if !st.pool.AppendCertsFromPEM(caPEM) {
			return nil, nil, nil, nil, fmt.Errorf("tls: no PEM certificates in CA file %s", r.caFile)
		}
	}
	if r.role == "client" {
		st.client = r.clientConfig(st)
	}
	if r.role == "server" {
		st.server = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*st.cert}, NextProtos: alpnH2}
		if st.pool != nil {
			st.server.ClientCAs = st.pool
			st.server.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return st, certPEM, keyPEM, caPEM, nil
}

func (r *reloader) clientConfig(st *state) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.serverName, RootCAs: st.pool}
	if st.cert != nil {
		cfg.Certificates = []tls.Certificate{*st.cert}
	}
	return cfg
}
