// Package rpcerr is the one error → gRPC status mapping (STYLE rule 6).
//
// The server interceptors of package server apply it to every error a handler
// returns, so handlers may return domain errors as they are; call Error
// yourself only where you want the status in hand (e.g. in a stream's Send loop).
//
//	status passes through unchanged   (a gateway relays downstream statuses)
//	fault.KindInvalid                 → InvalidArgument
//	fault.KindNotFound                → NotFound
//	fault.KindAlreadyExists           → AlreadyExists
//	fault.KindFailedPrecondition      → FailedPrecondition
//	fault.KindOverloaded              → ResourceExhausted
//	fault.KindUnavailable             → Unavailable
//	context.DeadlineExceeded          → DeadlineExceeded
//	context.Canceled                  → Canceled
//	anything else                     → Internal
//
// "Model not loaded yet" is a fault.KindUnavailable and so Unavailable, not
// FailedPrecondition: gRPC defines Unavailable as transient and safe to retry,
// and the gateway's round-robin retry goes to another replica that may have its
// model, while FailedPrecondition tells clients not to retry until they fix
// something, which they cannot.
//
// Faults carry an errdetails.ErrorInfo (AIP-193) with the fault's reason and
// Domain, so clients can branch on a stable reason rather than on messages,
// and, when the fault has a RetryAfter, an errdetails.RetryInfo (AIP-194)
// saying when to retry.
//
// Public wraps an error whose message must not reach clients (a downstream's
// transport error naming internal addresses): the client sees the public
// status, while Detail keeps the original for the log line.
package rpcerr

import (
	"context"
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hirez-ml/hirez/platform/fault"
)

// Domain is the ErrorInfo domain of every hirez error.
const Domain = "hirez.dev"

var kindCodes = map[fault.Kind]codes.Code{
	fault.KindInvalid:            codes.InvalidArgument,
	fault.KindNotFound:           codes.NotFound,
	fault.KindAlreadyExists:      codes.AlreadyExists,
	fault.KindFailedPrecondition: codes.FailedPrecondition,
	fault.KindOverloaded:         codes.ResourceExhausted,
	fault.KindUnavailable:        codes.Unavailable,
}

// Status maps err to a status (see the package doc). Status(nil) is OK.
func Status(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	if s, ok := status.FromError(err); ok {
		return s
	}
	if f, ok := errors.AsType[*fault.Error](err); ok {
		if c, ok := kindCodes[f.Kind]; ok {
			s := status.New(c, err.Error())
			reason := f.Reason
			if reason == "" {
				reason = f.Kind.Reason()
			}
			if d, derr := s.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: Domain}); derr == nil {
				s = d
			}
			if f.RetryAfter > 0 {
				if d, derr := s.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(f.RetryAfter)}); derr == nil {
					s = d
				}
			}
			return s
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, err.Error())
	}
	return status.New(codes.Internal, err.Error())
}

// Error maps err to a status error (see the package doc); Error(nil) is nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	return Status(err).Err()
}

// Code returns the code Error(err) would carry.
func Code(err error) codes.Code { return Status(err).Code() }

// Reason returns the ErrorInfo reason of a status error from Domain, or "".
// Clients use it to branch on e.g. "MODEL_NOT_LOADED" or "QUEUE_FULL".
func Reason(err error) string {
	s, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range s.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			return info.GetReason()
		}
	}
	return ""
}

// RetryDelay returns the RetryInfo delay of a status, if it has one.
func RetryDelay(s *status.Status) (time.Duration, bool) {
	for _, d := range s.Details() {
		if info, ok := d.(*errdetails.RetryInfo); ok && info.GetRetryDelay() != nil {
			return info.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// Public returns an error that clients see as s while its Error and
// Unwrap keep cause for logs and errors.Is: s's message must be fit for a
// public client, cause's need not be. Wrapping it (fmt.Errorf("…: %w"))
// keeps the public message, as the wrapper's text is built from Error.
func Public(s *status.Status, cause error) error { return &public{s: s, cause: cause} }

type public struct {
	s     *status.Status
	cause error
}

func (p *public) Error() string              { return p.s.Message() }
func (p *public) GRPCStatus() *status.Status { return p.s }
func (p *public) Unwrap() error              { return p.cause }

// Detail returns the hidden cause of the first Public error in err's chain
// (for the log line next to the public message), or "".
func Detail(err error) string {
	if p, ok := errors.AsType[*public](err); ok {
		return p.cause.Error()
	}
	return ""
}
