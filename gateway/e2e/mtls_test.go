package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/platform/client"
	"github.com/hirez-ml/hirez/platform/tlsconfig/tlstest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// healthOver asks p's health for service over a connection made with opts.
func healthOver(t *testing.T, p *proc, service string, opts ...client.Option) (healthpb.HealthCheckResponse_ServingStatus, error) {
	t.Helper()
	conn, err := client.Dial(p.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return resp.GetStatus(), err
}

// waitServingOver is waitServing over a connection made with opts.
func waitServingOver(t *testing.T, p *proc, service string, opts ...client.Option) {
	t.Helper()
	waitUntilServing(t, p, func() (healthpb.HealthCheckResponse_ServingStatus, error) {
		return healthOver(t, p, service, opts...)
	})
}

// TestMTLS runs the stack as the prod overlay does: the generator and both
// upscalers serve mTLS (client certificates from the CA required), the
// gateway presents its client certificate downstream and serves TLS to its
// own clients. A gateway without a client certificate is refused by every
// downstream and never becomes ready.
func TestMTLS(t *testing.T) {
	pki := tlstest.New(t)
	serve := []string{"--tls-cert", pki.ServerCert, "--tls-key", pki.ServerKey, "--tls-client-ca", pki.CA}
	gen := startProc(t, "generator", append([]string{"--model", genModel, "--max-wait", "2ms"}, serve...)...)
	var ups []string
	for range 2 {
		u := startProc(t, "upscaler", append([]string{"--model", upModel, "--max-wait", "2ms"}, serve...)...)
		ups = append(ups, u.addr)
	}
	gw := startProc(t, "gateway", "--generator-target", gen.addr, "--upscaler-target", strings.Join(ups, ","), "--http-addr", "",
		"--tls-cert", pki.ServerCert, "--tls-key", pki.ServerKey,
		"--downstream-tls-ca", pki.CA, "--downstream-tls-cert", pki.ClientCert, "--downstream-tls-key", pki.ClientKey)
	public := client.WithTLS(client.TLS{CA: pki.CA}) // the gateway's clients need no certificate
	waitServingOver(t, gw, "", public)

	conn, err := client.Dial(gw.addr, public, client.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got, err := generate(ctx, pb.NewGatewayServiceClient(conn), &pb.GenerateImagesRequest{Count: 4, Seed: 7}, nil)
	if err != nil || len(got) != 4 {
		t.Fatalf("%d images over mTLS hops, %v", len(got), err)
	}
	for i, m := range got {
		img, err := imageio.Decode(m.GetPng(), imageio.Limits{})
		if err != nil || img.W != 256 || len(m.GetProvenance().GetUpscalers()) != 3 {
			t.Fatalf("image %d: %v, provenance %v", i, err, m.GetProvenance())
		}
	}

	// The downstreams refuse what has no certificate of the CA.
	for _, tt := range []struct {
		name string
		opts []client.Option
	}{
		{"plaintext", nil},
		{"TLS without a client certificate", []client.Option{client.WithTLS(client.TLS{CA: pki.CA})}},
		{"a client certificate of another CA", []client.Option{client.WithTLS(client.TLS{CA: pki.CA, Cert: pki.OtherClientCert, Key: pki.OtherClientKey})}},
	} {
		if _, err := healthOver(t, gen, "liveness", tt.opts...); err == nil {
			t.Errorf("generator answered %s", tt.name)
		}
	}
	if st, err := healthOver(t, gen, "liveness", client.WithTLS(client.TLS{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey})); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("generator with the gateway's certificate: %v, %v", st, err)
	}

	// A gateway that does not present a certificate stays not ready.
	bare := startProc(t, "gateway", "--generator-target", gen.addr, "--upscaler-target", strings.Join(ups, ","), "--http-addr", "",
		"--downstream-tls-ca", pki.CA)
	waitServingOver(t, bare, "liveness")
	time.Sleep(2 * time.Second)
	if st, err := healthOver(t, bare, ""); err != nil || st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gateway without a client certificate: readiness %v, %v; want NOT_SERVING", st, err)
	}
}
