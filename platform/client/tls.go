package client

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"

	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"

	"github.com/hirez-ml/hirez/platform/config"
	"github.com/hirez-ml/hirez/platform/tlsconfig"
)

// reloadingTLS is gRPC transport credentials whose configuration is read
// again for every connection, so a rotated CA or client certificate (files
// replaced on disk) is used from the next connection on. A tls.Config cannot
// swap its RootCAs after the fact; building one per handshake can.
type reloadingTLS struct {
	files *tlsconfig.ClientFiles
}

var _ credentials.TransportCredentials = reloadingTLS{}

func (r reloadingTLS) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(r.files.Config()).ClientHandshake(ctx, authority, conn)
}

func (r reloadingTLS) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("client TLS credentials cannot serve")
}

func (r reloadingTLS) Info() credentials.ProtocolInfo {
	return credentials.NewTLS(r.files.Config()).Info()
}

func (r reloadingTLS) Clone() credentials.TransportCredentials { return r }

// OverrideServerName is deprecated in gRPC and unused here; the server name
// comes from TLS.ServerName.
func (r reloadingTLS) OverrideServerName(string) error {
	return errors.New("client TLS: set TLS.ServerName instead")
}

// TLSFlags are one peer's client TLS flags, --<peer>-tls-ca, --<peer>-tls-cert
// and --<peer>-tls-key (with their HIREZ_* variables): the rule for every
// binary that dials another hirez server (the gateway's --downstream-tls-*,
// the serving binaries' --registry-tls-*).
type TLSFlags struct {
	peer string
	TLS
}

// RegisterTLSFlags defines peer's client TLS flags on fs; what names the
// servers dialled, for the help text ("the registry").
func RegisterTLSFlags(fs *flag.FlagSet, peer, what string) *TLSFlags {
	f := &TLSFlags{peer: peer}
	fs.StringVar(&f.CA, peer+"-tls-ca", "", "verify "+what+" against this PEM CA (enables TLS; reloaded when it changes)")
	fs.StringVar(&f.Cert, peer+"-tls-cert", "", "client certificate (PEM) presented to "+what+" for mTLS (enables TLS; system roots unless --"+peer+"-tls-ca; reloaded when it changes)")
	fs.StringVar(&f.Key, peer+"-tls-key", "", "private key (PEM) of --"+peer+"-tls-cert")
	return f
}

// Enabled reports whether any flag turns TLS on.
func (f *TLSFlags) Enabled() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Names returns the flag names with their variables, for errors elsewhere.
func (f *TLSFlags) Names() []string {
	var out []string
	for _, n := range []string{"ca", "cert", "key"} {
		out = append(out, f.flagName(n))
	}
	return out
}

func (f *TLSFlags) flagName(n string) string {
	name := f.peer + "-tls-" + n
	return fmt.Sprintf("--%s (%s)", name, config.EnvName(name))
}

// Validate checks that the certificate and key come together.
func (f *TLSFlags) Validate() error {
	if (f.Cert == "") != (f.Key == "") {
		return fmt.Errorf("%s and %s must be given together", f.flagName("cert"), f.flagName("key"))
	}
	return nil
}

// Options returns the Dial options the flags ask for: WithTLS when enabled
// (reloads logged to logger), nothing otherwise.
func (f *TLSFlags) Options(logger *zap.Logger) []Option {
	if !f.Enabled() {
		return nil
	}
	return []Option{WithTLS(f.TLS), WithLogger(logger)}
}
