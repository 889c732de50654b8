// Package page makes and reads the opaque page tokens of List calls (AIP-158).
// A token carries the position after the last item returned and a fingerprint
// of the filter, so a token replayed with other filters is rejected.
package page

import (
	"encoding/base64"
	"encoding/json"

	"github.com/hirez-ml/hirez/platform/fault"
)

// Token is the decoded content of a page token.
type Token struct {
	After  int64  `json:"a,omitempty"` // position: last sequence number returned
	Name   string `json:"n,omitempty"` // position: last name returned (name-ordered lists)
	Filter string `json:"f,omitempty"` // fingerprint of the request's filters
}

// Encode returns the opaque string of t.
func Encode(t Token) string {
	b, _ := json.Marshal(t) // a Token always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode reads s ("" = first page) and checks that it was made for filter.
func Decode(s, filter string) (Token, error) {
	if s == "" {
		return Token{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var t Token
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil {
		return Token{}, fault.Invalid("page_token %q is not a token this server returned", s)
	}
	if t.Filter != filter {
		return Token{}, fault.Invalid("page_token was issued for other filters; repeat the first call's filters or start again without a token")
	}
	return t, nil
}

// Size reads a requested page size: 0 is def, above max or negative is invalid.
func Size(n int32, def, max int) (int, error) {
	switch {
	case n < 0:
		return 0, fault.Invalid("page_size %d is negative", n)
	case n == 0:
		return def, nil
	case int(n) > max:
		return 0, fault.Invalid("page_size %d is above the limit of %d", n, max)
	}
	return int(n), nil
}
