package limits

import (
	"fmt"
	"unicode/utf8"
)

// Names: model names, aliases and job ids share one rule (ValidName), a
// version is a digest or an alias, and an empty version means production.
// The Check functions below are the only place that writes the messages
// about them; callers add the field (or flag) the value came from and map
// the error to their own kind (INVALID_ARGUMENT for an RPC).
//
// The messages say what is wrong and what is allowed. A name's message does
// not contain the words "version" or "label": the studio page marks the
// input a message is about by those words.

// Well-known registry aliases.
const (
	// AliasProduction is the version the serving services run.
	AliasProduction = "production"
	// AliasCandidate is set by the trainer on every version it publishes.
	AliasCandidate = "candidate"
)

// DigestPrefix starts every model version digest: "sha256:" + 64 lower-case hex.
const DigestPrefix = "sha256:"

// NameRule says, in words, what ValidName accepts; every message about a
// bad name, alias or job id quotes it.
const NameRule = "lower-case letters, digits and '-', starting with a letter and ending with a letter or digit, at most 63 characters"

// DigestForm says, in words, what IsDigest accepts.
const DigestForm = DigestPrefix + "<64 lower-case hex digits>"

// MaxQuoted is the most bytes of a value a message quotes (as fault.MaxQuoted
// does for the other messages): a longer one is cut and its length given,
// so a 100 kB "name" is not echoed whole into the status and the log line.
const MaxQuoted = 128

// ValidName reports whether s is a valid model name, alias or job id:
// [a-z]([a-z0-9-]{0,61}[a-z0-9])?, i.e. an RFC 1035 label (NameRule).
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' || c == '-':
			if i == 0 || (i == len(s)-1 && c == '-') {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// IsDigest reports whether v is a version digest rather than an alias
// (DigestForm).
func IsDigest(v string) bool {
	if len(v) != len(DigestPrefix)+64 || v[:len(DigestPrefix)] != DigestPrefix {
		return false
	}
	for i := len(DigestPrefix); i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidVersion reports whether v names a version: a digest or an alias.
func ValidVersion(v string) bool { return IsDigest(v) || ValidName(v) }

// DefaultVersion returns v, or AliasProduction when v is empty: a request
// that names no version asks for the one in production.
func DefaultVersion(v string) string {
	if v == "" {
		return AliasProduction
	}
	return v
}

// IsProduction reports whether version v asks for the production version
// (empty or AliasProduction), i.e. whatever a serving service runs now.
func IsProduction(v string) bool { return DefaultVersion(v) == AliasProduction }

// CheckName returns nil when s is a valid name (ValidName), else an error
// naming field: `field "s" is not a valid name: use <NameRule>`.
func CheckName(field, s string) error {
	if ValidName(s) {
		return nil
	}
	return fmt.Errorf("%s %s is not a valid name: use %s", field, quote(s), NameRule)
}

// CheckVersion returns nil when v is a digest or an alias (ValidVersion),
// else an error naming field that says both forms.
func CheckVersion(field, v string) error {
	if ValidVersion(v) {
		return nil
	}
	return fmt.Errorf("%s %s is neither a digest (%s) nor an alias such as %q (%s)", field, quote(v), DigestForm, AliasProduction, NameRule)
}

// CheckDigest returns nil when v is a digest, else an error naming field;
// for the calls that take a version only as a digest (never an alias).
func CheckDigest(field, v string) error {
	if IsDigest(v) {
		return nil
	}
	return fmt.Errorf("%s %s is not a digest (%s); give the digest, not an alias", field, quote(v), DigestForm)
}

// CheckRef checks a model reference of a request, whose name and version
// may each be empty (the server's model; production). field names the
// reference ("model", "generator"), and the error names its part:
// "generator.name" or "generator.version" (the name first when both are
// wrong).
func CheckRef(field, name, version string) error {
	if name != "" {
		if err := CheckName(field+".name", name); err != nil {
			return err
		}
	}
	if version != "" {
		return CheckVersion(field+".version", version)
	}
	return nil
}

// quote is %q of s, cut to its first MaxQuoted bytes (at a character
// boundary) and its length when longer: the same form fault uses.
func quote(s string) string {
	if len(s) <= MaxQuoted {
		return fmt.Sprintf("%q", s)
	}
	n := MaxQuoted
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:n], len(s))
}
