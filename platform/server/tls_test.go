package server_test

import (
	"context"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/platform/client"
	"github.com/hirez-ml/hirez/platform/servertest"
	"github.com/hirez-ml/hirez/platform/tlsconfig/tlstest"
)

// TestMTLSRotation runs a real server over loopback TCP with its certificate,
// key and client CA in a kubelet-style Secret directory, and rotates them on
// disk while it serves.
func TestMTLSRotation(t *testing.T) {
	pki := tlstest.New(t)
	first, second := pki.Server(t, "first"), pki.Server(t, "second")
	dir := pki.SecretDir(t, first)
	cfg := servertest.Config()
	cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.crt")
	core, logs := observer.New(zap.InfoLevel)
	h := serve(t, "mtls", servertest.TCP(), servertest.WithConfig(cfg), servertest.WithLogger(zap.New(core)))
	impl := h.impl

	gateway := client.TLS{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}
	dial := func(opts ...client.Option) testpb.TestServiceClient {
		t.Helper()
		return testpb.NewTestServiceClient(h.Dial(t, opts...))
	}
	// call makes a unary call and returns the serial of the server
	// certificate its connection was made with.
	call := func(c testpb.TestServiceClient) (*big.Int, error) {
		t.Helper()
		cctx, ccancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer ccancel()
		var p peer.Peer
		if _, err := c.UnaryCall(cctx, &testpb.SimpleRequest{}, grpc.Peer(&p)); err != nil {
			return nil, err
		}
		return p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber, nil
	}
	want := func(step string, c testpb.TestServiceClient, p tlstest.Pair) {
		t.Helper()
		got, err := call(c)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if got.Cmp(p.Serial) != 0 {
			t.Fatalf("%s: served with certificate serial %v, want %v", step, got, p.Serial)
		}
	}

	t.Run("refused without the right client certificate", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			opts []client.Option
		}{
			{"plaintext", nil},
			{"no client certificate", []client.Option{client.WithTLS(client.TLS{CA: pki.CA})}},
			{"client certificate from another CA", []client.Option{client.WithTLS(client.TLS{CA: pki.CA, Cert: pki.OtherClientCert, Key: pki.OtherClientKey})}},
			{"client trusts another CA", []client.Option{client.WithTLS(client.TLS{CA: pki.OtherCA, Cert: pki.ClientCert, Key: pki.ClientKey})}},
		} {
			if _, err := call(dial(tt.opts...)); status.Code(err) != codes.Unavailable {
				t.Errorf("%s: %v, want Unavailable (refused handshake)", tt.name, err)
			}
		}
	})

	old := dial(client.WithTLS(gateway))
	want("the right client certificate", old, first)
	stream, err := old.StreamingOutputCall(t.Context(), &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	<-impl.started

	tlstest.Swap(t, dir, map[string][]byte{"tls.crt": second.Cert, "tls.key": second.Key})
	want("a new connection after the swap", dial(client.WithTLS(gateway)), second)
	want("the connection made before", old, first)
	close(impl.release)
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("stream opened before the rotation: %v", err)
	}
	if logs.FilterMessage("reloaded TLS files").Len() != 1 {
		t.Errorf("reload logged %d times", logs.FilterMessage("reloaded TLS files").Len())
	}

	// A broken replacement (a new certificate without its key) keeps the
	// second certificate serving and says which files failed.
	tlstest.Swap(t, dir, map[string][]byte{"tls.crt": pki.Server(t, "third").Cert})
	want("a new connection after a broken swap", dial(client.WithTLS(gateway)), second)
	bad := logs.FilterMessageSnippet("do not load").All()
	if len(bad) != 1 || !strings.Contains(bad[0].ContextMap()["error"].(string), cfg.TLSCert) {
		t.Errorf("broken replacement logged as %v", bad)
	}
}
