package grpcapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Auth decides who may call the methods that change state (create, cancel,
// resume, promote, set alias, delete a version). Reads are open.
type Auth struct {
	// Token is the admin bearer token; empty = none configured.
	Token string
	// Identities are client-certificate identities (subject common name, DNS
	// or URI SAN) allowed to write when the server verifies client certificates.
	Identities []string
	// InsecureWrites lets anyone write when neither a token nor identities are
	// configured (development only).
	InsecureWrites bool
}

// Authorize returns nil when ctx's caller may write, else an Unauthenticated
// or PermissionDenied status saying what is missing.
func (a Auth) Authorize(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if vals := md.Get("authorization"); len(vals) > 0 {
		tok, ok := bearerToken(vals[0])
		if !ok {
			return status.Error(codes.Unauthenticated, `authorization metadata must be "Bearer <token>"`)
		}
		if a.Token == "" {
			return status.Error(codes.PermissionDenied, "this trainer has no admin token configured (--admin-token-file); bearer tokens are not accepted")
		}
		// Compare digests: constant time and independent of the lengths.
		got, want := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(a.Token))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return status.Error(codes.PermissionDenied, "the bearer token is not this trainer's admin token")
		}
		return nil
	}
	if id, ok := certIdentity(ctx, a.Identities); ok {
		_ = id
		return nil
	}
	if a.Token == "" && len(a.Identities) == 0 {
		if a.InsecureWrites {
			return nil
		}
		return status.Error(codes.PermissionDenied, "writes are disabled: start the trainer with --admin-token-file (or --insecure-allow-writes for development)")
	}
	if len(a.Identities) > 0 && hasClientCert(ctx) {
		return status.Error(codes.PermissionDenied, "the client certificate's identity is not in --admin-identities")
	}
	return status.Error(codes.Unauthenticated, `this call changes state: send "authorization: Bearer <admin token>" metadata or use an allowed client certificate`)
}

// bearerToken returns the token of an authorization value "Bearer <token>".
// The scheme is case-insensitive and one or more spaces end it (RFC 7235
// §2.1, RFC 6750 §2.1), so "bearer <token>" from other clients is accepted.
func bearerToken(v string) (string, bool) {
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimLeft(tok, " ")
	return tok, tok != ""
}

func tlsInfo(ctx context.Context) (credentials.TLSInfo, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return credentials.TLSInfo{}, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	return ti, ok
}

func hasClientCert(ctx context.Context) bool {
	ti, ok := tlsInfo(ctx)
	return ok && len(ti.State.VerifiedChains) > 0
}

// certIdentity returns the verified client certificate's identity that is in
// allowed, if any.
func certIdentity(ctx context.Context, allowed []string) (string, bool) {
	if len(allowed) == 0 {
		return "", false
	}
	ti, ok := tlsInfo(ctx)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return "", false
	}
	cert := ti.State.VerifiedChains[0][0]
	ids := []string{cert.Subject.CommonName}
	ids = append(ids, cert.DNSNames...)
	for _, u := range cert.URIs {
		ids = append(ids, u.String())
	}
	for _, id := range ids {
		if id != "" && slices.Contains(allowed, id) {
			return id, true
		}
	}
	return "", false
}
