// Package fault classifies domain errors without importing gRPC.
//
// Domain packages (engine, batcher, registry, ...) return errors built here so that
// the transport layer can map them to status codes in one place (package rpcerr)
// while the domain stays free of grpc imports (STYLE rule 3):
//
//	if n > max {
//		return fault.Invalid("batch of %d exceeds %d", n, max)
//	}
//	return fault.New(fault.KindUnavailable, "MODEL_NOT_LOADED", "no model loaded yet")
//
// Errors made here wrap like any other: fmt.Errorf("upscale: %w", err) keeps the
// kind, and errors.Is(err, fault.KindNotFound) tests it.
package fault

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// Kind says what went wrong in terms a caller can act on.
// A Kind is itself an error so that errors.Is(err, fault.KindInvalid) works.
type Kind uint8

// The kinds, one per distinct caller reaction.
const (
	// KindUnknown is the zero Kind: not a classified fault (maps to Internal).
	KindUnknown Kind = iota
	// KindInvalid: the request is wrong and retrying it unchanged will not help.
	KindInvalid
	// KindNotFound: a named thing (model, job, version) does not exist.
	KindNotFound
	// KindAlreadyExists: creating something that exists already.
	KindAlreadyExists
	// KindFailedPrecondition: the system is not in a state where this request can
	// run, and retrying will not help until the state changes (e.g. promote a
	// job that has not finished).
	KindFailedPrecondition
	// KindOverloaded: a bounded queue or quota is full; retry later with backoff.
	KindOverloaded
	// KindUnavailable: temporarily unable to serve (e.g. model not loaded yet);
	// retrying, possibly on another replica, is expected to succeed.
	KindUnavailable
)

var kindNames = [...]string{
	KindUnknown:            "unknown",
	KindInvalid:            "invalid argument",
	KindNotFound:           "not found",
	KindAlreadyExists:      "already exists",
	KindFailedPrecondition: "failed precondition",
	KindOverloaded:         "overloaded",
	KindUnavailable:        "unavailable",
}

var kindReasons = [...]string{
	KindUnknown:            "UNKNOWN",
	KindInvalid:            "INVALID_ARGUMENT",
	KindNotFound:           "NOT_FOUND",
	KindAlreadyExists:      "ALREADY_EXISTS",
	KindFailedPrecondition: "FAILED_PRECONDITION",
	KindOverloaded:         "OVERLOADED",
	KindUnavailable:        "UNAVAILABLE",
}

// String returns a short lower-case name of k.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Error makes a Kind usable as an errors.Is target.
func (k Kind) Error() string { return k.String() }

// Reason returns the default machine-readable reason (UPPER_SNAKE_CASE) for k.
func (k Kind) Reason() string {
	if int(k) < len(kindReasons) {
		return kindReasons[k]
	}
	return kindReasons[KindUnknown]
}

// Error is a classified domain error.
type Error struct {
	// Kind classifies the error.
	Kind Kind
	// Reason is a stable UPPER_SNAKE_CASE identifier for machines, e.g.
	// "MODEL_NOT_LOADED" or "QUEUE_FULL" (AIP-193 ErrorInfo.reason).
	Reason string
	// Err is the underlying error carrying the human-readable message.
	Err error
	// RetryAfter, when positive, is how long the caller should wait before
	// retrying (an overloaded server's hint; AIP-194 RetryInfo).
	RetryAfter time.Duration
}

var _ error = (*Error)(nil)

// Error returns the message of the underlying error.
func (e *Error) Error() string {
	if e.Err == nil {
		return e.Kind.String()
	}
	return e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is e's Kind, so errors.Is(err, fault.KindNotFound)
// holds for any error wrapping a not-found fault.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

// New returns an error of kind k with a machine-readable reason ("" uses the
// kind's default) and a message formatted as fmt.Errorf does (%w wraps).
//
// A string argument longer than MaxQuoted bytes that the format quotes (%q,
// how messages echo a caller's input) is cut to its first MaxQuoted bytes and
// its length, so a 100 kB "model name" is not echoed whole into the status
// and the log line.
func New(k Kind, reason, format string, args ...any) error {
	if reason == "" {
		reason = k.Reason()
	}
	return &Error{Kind: k, Reason: reason, Err: fmt.Errorf(format, clip(args)...)}
}

// MaxQuoted is the most bytes of a string argument a fault's message quotes:
// twice the longest valid name or label, so every valid one appears whole.
const MaxQuoted = 128

func clip(args []any) []any {
	var out []any
	for i, a := range args {
		if s, ok := a.(string); ok && len(s) > MaxQuoted {
			if out == nil {
				out = slices.Clone(args)
			}
			out[i] = clipped(s)
		}
	}
	if out == nil {
		return args
	}
	return out
}

// clipped is a long string argument: %q prints the head, quoted, then "…" and
// the length; any other verb prints the whole string as fmt would.
type clipped string

func (c clipped) Format(f fmt.State, verb rune) {
	if verb != 'q' {
		fmt.Fprintf(f, fmt.FormatString(f, verb), string(c))
		return
	}
	n := MaxQuoted
	for n > 0 && !utf8.RuneStart(c[n]) {
		n-- // do not split a character
	}
	fmt.Fprintf(f, "%q… (%d bytes)", string(c[:n]), len(c))
}

// Invalid returns a KindInvalid error: bad input from the caller.
func Invalid(format string, args ...any) error { return New(KindInvalid, "", format, args...) }

// NotFound returns a KindNotFound error.
func NotFound(format string, args ...any) error { return New(KindNotFound, "", format, args...) }

// AlreadyExists returns a KindAlreadyExists error.
func AlreadyExists(format string, args ...any) error {
	return New(KindAlreadyExists, "", format, args...)
}

// FailedPrecondition returns a KindFailedPrecondition error.
func FailedPrecondition(format string, args ...any) error {
	return New(KindFailedPrecondition, "", format, args...)
}

// Overloaded returns a KindOverloaded error: a full queue, retry later.
func Overloaded(format string, args ...any) error {
	return New(KindOverloaded, "", format, args...)
}

// OverloadedRetry returns a KindOverloaded error with a reason and a hint
// of how long to wait before retrying.
func OverloadedRetry(reason string, after time.Duration, format string, args ...any) error {
	err := New(KindOverloaded, reason, format, args...).(*Error)
	err.RetryAfter = after
	return err
}

// Unavailable returns a KindUnavailable error: not ready yet, retry.
func Unavailable(format string, args ...any) error {
	return New(KindUnavailable, "", format, args...)
}

// KindOf returns the Kind of the outermost fault in err's chain, or KindUnknown.
func KindOf(err error) Kind {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	return KindUnknown
}

// ReasonOf returns the reason of the outermost fault in err's chain, or "".
func ReasonOf(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Reason
	}
	return ""
}
