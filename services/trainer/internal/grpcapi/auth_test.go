package grpcapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func withCert(ctx context.Context, cn string, dns ...string) context.Context {
	u, _ := url.Parse("spiffe://hirez/ci")
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns, URIs: []*url.URL{u}}
	info := credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}}
	return peer.NewContext(ctx, &peer.Peer{AuthInfo: info})
}

func bearer(tok string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", tok))
}

func TestAuthorize(t *testing.T) {
	bg := context.Background()
	tokenOnly := Auth{Token: "t0k"}
	certs := Auth{Identities: []string{"ops-admin", "spiffe://hirez/ci"}}
	none := Auth{}
	cases := []struct {
		name string
		a    Auth
		ctx  context.Context
		want codes.Code
	}{
		{"right token", tokenOnly, bearer("Bearer t0k"), codes.OK},
		{"wrong token", tokenOnly, bearer("Bearer t0k2"), codes.PermissionDenied},
		{"lower-case scheme", tokenOnly, bearer("bearer t0k"), codes.OK},
		{"upper-case scheme, two spaces", tokenOnly, bearer("BEARER  t0k"), codes.OK},
		{"scheme glued to the token", tokenOnly, bearer("Bearert0k"), codes.Unauthenticated},
		{"not bearer", tokenOnly, bearer("Basic dDBr"), codes.Unauthenticated},
		{"empty bearer", tokenOnly, bearer("Bearer "), codes.Unauthenticated},
		{"no credentials", tokenOnly, bg, codes.Unauthenticated},
		{"allowed CN", certs, withCert(bg, "ops-admin"), codes.OK},
		{"allowed URI SAN", certs, withCert(bg, "someone"), codes.OK},
		{"cert not allowed", Auth{Identities: []string{"ops-admin"}}, withCert(bg, "intruder", "intruder.example"), codes.PermissionDenied},
		{"cert without identities configured", tokenOnly, withCert(bg, "ops-admin"), codes.Unauthenticated},
		{"nothing configured", none, bg, codes.PermissionDenied},
		{"token sent, none configured", none, bearer("Bearer x"), codes.PermissionDenied},
		{"insecure writes", Auth{InsecureWrites: true}, bg, codes.OK},
	}
	for _, c := range cases {
		if got := status.Code(c.a.Authorize(c.ctx)); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
