package server

import (
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// sendDeadline gives every message of a server stream SendTimeout to be taken
// by the client. A client that stops reading fills its flow-control window,
// and SendMsg then blocks until the client hangs up, holding the handler and
// whatever it has buffered (the gateway's images in flight); past the
// deadline the send fails with DEADLINE_EXCEEDED and the handler's return
// ends the RPC, freeing what it held.
func (s *Server) sendDeadline(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if s.cfg.SendTimeout <= 0 || !info.IsServerStream {
		return handler(srv, ss)
	}
	return handler(srv, &deadlineStream{ServerStream: ss, timeout: s.cfg.SendTimeout, sends: &s.sends})
}

// deadlineStream is a ServerStream whose SendMsg gives up after timeout.
// grpc-go cannot abandon a send blocked on flow control, so each send runs on
// a goroutine of its own: a timed-out one returns as soon as the RPC has ended
// (grpc cancels the transport stream once the handler returns), and
// Server.sends, which Run waits for, owns it until then.
type deadlineStream struct {
	grpc.ServerStream
	timeout time.Duration
	sends   *sync.WaitGroup
	err     error // sticky once a send timed out: no second send may start beside the stuck one
}

func (d *deadlineStream) SendMsg(m any) error {
	if d.err != nil {
		return d.err
	}
	done := make(chan error, 1)
	d.sends.Go(func() { done <- d.ServerStream.SendMsg(m) })
	timer := time.NewTimer(d.timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		d.err = status.Errorf(codes.DeadlineExceeded,
			"the client took no message for %v (the server's --send-timeout): stream ended; read the responses as they arrive", d.timeout)
		return d.err
	}
}

var _ grpc.ServerStream = (*deadlineStream)(nil)
