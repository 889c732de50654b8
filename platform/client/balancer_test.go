package client_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/hirez-ml/hirez/platform/client"
	"github.com/hirez-ml/hirez/platform/servertest"
)

// call makes one call carrying a and returns the replica's name.
func call(t *testing.T, conn *grpc.ClientConn, a *client.Attempt) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := testpb.NewTestServiceClient(conn).UnaryCall(client.WithAttempt(ctx, a), &testpb.SimpleRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetUsername()
}

func dialBoth(t *testing.T, a, b string) *grpc.ClientConn {
	t.Helper()
	conn := servertest.Dial(t, "static:///"+a+","+b)
	deadline := time.Now().Add(5 * time.Second)
	for len(callNames(t, conn, 2)) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return conn
}

// TestEjectedReplicaGetsNoCalls: after Eject, calls go to the other
// replica; Avoid sends a retry elsewhere; with every replica ejected or
// avoided calls still go through.
func TestEjectedReplicaGetsNoCalls(t *testing.T) {
	a, _ := replica(t, "a", false)
	b, _ := replica(t, "b", false)
	conn := dialBoth(t, a, b)

	first := &client.Attempt{}
	name := call(t, conn, first)
	if first.Addr() != a && first.Addr() != b {
		t.Fatalf("attempt recorded %q", first.Addr())
	}
	first.Eject()
	for range 6 {
		if got := call(t, conn, &client.Attempt{}); got == name {
			t.Fatalf("ejected replica %s got a call", name)
		}
	}
	if got := call(t, conn, &client.Attempt{Avoid: first.Addr()}); got == name {
		t.Fatalf("avoided replica %s got the call", name)
	}
	other := &client.Attempt{}
	call(t, conn, other)
	if got := call(t, conn, &client.Attempt{Avoid: other.Addr()}); got != name {
		t.Fatalf("with the other replica avoided, the call went to %s, want the ejected %s", got, name)
	}
}

// TestRestartedReplicaIsUnejected: a replica that went away, was ejected
// and came back on its address gets calls again without waiting out its
// ejection, and soon (the reconnect backoff is at most a second).
func TestRestartedReplicaIsUnejected(t *testing.T) {
	a, _ := replica(t, "a", false)
	serve := func(addr string) *servertest.Bare {
		return servertest.ServeBareAt(t, addr, func(srv *grpc.Server) { testpb.RegisterTestServiceServer(srv, named{name: "b"}) })
	}
	first := serve("127.0.0.1:0")
	b := first.Addr
	conn := dialBoth(t, a, b)
	for {
		at := &client.Attempt{}
		if call(t, conn, at) == "b" {
			for range 8 {
				at.Eject() // ejected for long: far beyond the restart below
			}
			break
		}
	}
	first.Stop()
	// Down for two seconds: gRPC's default backoff would now wait 2.6 s
	// before its next try, ours at most a second.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		call(t, conn, &client.Attempt{}) // served by a meanwhile
	}
	serve(b)
	restarted := time.Now()
	for call(t, conn, &client.Attempt{}) != "b" {
		if time.Since(restarted) > 10*time.Second {
			t.Fatal("the restarted replica got no call in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("restarted replica got a call %v after it listened", time.Since(restarted).Round(10*time.Millisecond))
}
