package rpcerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/platform/rpcerr"
)

func TestError(t *testing.T) {
	downstream := status.Error(codes.ResourceExhausted, "upscaler queue full")
	tests := []struct {
		name   string
		err    error
		code   codes.Code
		reason string
		msg    string
	}{
		{"nil", nil, codes.OK, "", ""},
		{"invalid", fault.Invalid("bad seed"), codes.InvalidArgument, "INVALID_ARGUMENT", "bad seed"},
		{"not found", fault.NotFound("no model v3"), codes.NotFound, "NOT_FOUND", "no model v3"},
		{"exists", fault.AlreadyExists("job j1"), codes.AlreadyExists, "ALREADY_EXISTS", "job j1"},
		{"precondition", fault.FailedPrecondition("job running"), codes.FailedPrecondition, "FAILED_PRECONDITION", "job running"},
		{"overloaded", fault.Overloaded("queue full"), codes.ResourceExhausted, "OVERLOADED", "queue full"},
		{"unavailable", fault.New(fault.KindUnavailable, "MODEL_NOT_LOADED", "no model"), codes.Unavailable, "MODEL_NOT_LOADED", "no model"},
		{"wrapped fault", fmt.Errorf("upscale: %w", fault.Invalid("odd side")), codes.InvalidArgument, "INVALID_ARGUMENT", "upscale: odd side"},
		{"deadline", fmt.Errorf("wait batch: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "", "wait batch: context deadline exceeded"},
		{"canceled", context.Canceled, codes.Canceled, "", "context canceled"},
		{"status passes through", downstream, codes.ResourceExhausted, "", "upscaler queue full"},
		{"other", errors.New("nan in weights"), codes.Internal, "", "nan in weights"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rpcerr.Error(tt.err)
			if (got == nil) != (tt.err == nil) {
				t.Fatalf("Error(%v) = %v", tt.err, got)
			}
			s := status.Convert(got)
			if s.Code() != tt.code || s.Message() != tt.msg {
				t.Errorf("status = %v %q, want %v %q", s.Code(), s.Message(), tt.code, tt.msg)
			}
			if r := rpcerr.Reason(got); r != tt.reason {
				t.Errorf("Reason = %q, want %q", r, tt.reason)
			}
			if c := rpcerr.Code(tt.err); c != tt.code {
				t.Errorf("Code = %v, want %v", c, tt.code)
			}
		})
	}
	if got := rpcerr.Error(downstream); got != downstream && status.Convert(got).Proto().String() != status.Convert(downstream).Proto().String() {
		t.Errorf("downstream status changed: %v", got)
	}
}

func TestRetryInfo(t *testing.T) {
	err := fmt.Errorf("admit: %w", fault.OverloadedRetry("GATEWAY_BUSY", 3*time.Second, "busy"))
	s := rpcerr.Status(err)
	if s.Code() != codes.ResourceExhausted || rpcerr.Reason(s.Err()) != "GATEWAY_BUSY" {
		t.Fatalf("status %v, reason %q", s, rpcerr.Reason(s.Err()))
	}
	if d, ok := rpcerr.RetryDelay(s); !ok || d != 3*time.Second {
		t.Fatalf("RetryDelay = %v, %v; want 3s", d, ok)
	}
	if _, ok := rpcerr.RetryDelay(rpcerr.Status(fault.Overloaded("full"))); ok {
		t.Fatal("a fault without RetryAfter carries a RetryInfo")
	}
}

func TestPublicHidesTheCause(t *testing.T) {
	cause := status.Error(codes.Unavailable, "connection error: dial tcp 127.0.0.1:9501: connect: connection refused")
	err := fmt.Errorf("image 3: %w", rpcerr.Public(status.New(codes.Unavailable, "no upscaler replica could take the call"), cause))
	s := rpcerr.Status(err)
	if s.Code() != codes.Unavailable || s.Message() != "image 3: no upscaler replica could take the call" {
		t.Fatalf("status %v %q", s.Code(), s.Message())
	}
	if rpcerr.Detail(err) != cause.Error() || !errors.Is(err, cause) {
		t.Fatalf("detail %q", rpcerr.Detail(err))
	}
	if rpcerr.Detail(cause) != "" {
		t.Fatal("a plain status has a detail")
	}
}
