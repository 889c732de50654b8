package limits

import (
	"strconv"
	"strings"
	"testing"
)

var hex64 = strings.Repeat("0123456789abcdef", 4)

func TestValidName(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"a", true}, {"dcgan-emoji-64", true}, {"srcnn9", true}, {"a-b", true}, {"a--b", true},
		{strings.Repeat("a", 63), true}, {"production", true},
		{"", false}, {"9lives", false}, {"-a", false}, {"a-", false}, {"Upper", false},
		{"a_b", false}, {"a.b", false}, {"a b", false}, {"é", false}, {strings.Repeat("a", 64), false},
	}
	for _, tt := range tests {
		if got := ValidName(tt.in); got != tt.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tt.in, got, tt.ok)
		}
	}
}

func TestIsDigest(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{DigestPrefix + hex64, true},
		{"production", false},
		{"", false},
		{DigestPrefix + hex64[1:], false},
		{DigestPrefix + strings.ToUpper(hex64), false},
		{"sha512:" + hex64, false},
		{DigestPrefix + hex64 + "0", false},
	}
	for _, tt := range tests {
		if got := IsDigest(tt.in); got != tt.ok {
			t.Errorf("IsDigest(%q) = %v, want %v", tt.in, got, tt.ok)
		}
		if got := ValidVersion(tt.in); got != (tt.ok || ValidName(tt.in)) {
			t.Errorf("ValidVersion(%q) = %v", tt.in, got)
		}
	}
}

// The alias rule: an empty version is production, and only those two ask
// for whatever a serving service runs now.
func TestProductionAlias(t *testing.T) {
	tests := []struct {
		in, resolved string
		production   bool
	}{
		{"", AliasProduction, true},
		{AliasProduction, AliasProduction, true},
		{AliasCandidate, AliasCandidate, false},
		{"Production", "Production", false},
		{DigestPrefix + hex64, DigestPrefix + hex64, false},
	}
	for _, tt := range tests {
		if got := DefaultVersion(tt.in); got != tt.resolved {
			t.Errorf("DefaultVersion(%q) = %q, want %q", tt.in, got, tt.resolved)
		}
		if got := IsProduction(tt.in); got != tt.production {
			t.Errorf("IsProduction(%q) = %v, want %v", tt.in, got, tt.production)
		}
	}
}

// NameRule, DigestForm and the limits they quote must agree.
func TestRuleTextQuotesLimits(t *testing.T) {
	if !strings.Contains(NameRule, "at most "+strconv.Itoa(MaxNameLength)+" characters") {
		t.Errorf("NameRule %q does not say MaxNameLength %d", NameRule, MaxNameLength)
	}
	if DigestForm != "sha256:<64 lower-case hex digits>" {
		t.Errorf("DigestForm = %q", DigestForm)
	}
}

const (
	nameMsg    = ` is not a valid name: use lower-case letters, digits and '-', starting with a letter and ending with a letter or digit, at most 63 characters`
	versionMsg = ` is neither a digest (sha256:<64 lower-case hex digits>) nor an alias such as "production" (lower-case letters, digits and '-', starting with a letter and ending with a letter or digit, at most 63 characters)`
	digestMsg  = ` is not a digest (sha256:<64 lower-case hex digits>); give the digest, not an alias`
)

func TestCheckMessages(t *testing.T) {
	long := strings.Repeat("a", 100_000)
	tests := []struct {
		name string
		err  error
		want string // "" for nil
	}{
		{"valid name", CheckName("job_id", "job-1"), ""},
		{"empty name", CheckName("spec.model_name", ""), `spec.model_name ""` + nameMsg},
		{"upper case", CheckName("alias", "Prod"), `alias "Prod"` + nameMsg},
		{"leading digit", CheckName("model name", "9lives"), `model name "9lives"` + nameMsg},
		{"leading dash", CheckName("model name", "-a"), `model name "-a"` + nameMsg},
		{"trailing dash", CheckName("model name", "a-"), `model name "a-"` + nameMsg},
		{"underscore", CheckName("--model-name", "a_b"), `--model-name "a_b"` + nameMsg},
		{"64 characters", CheckName("job_id", strings.Repeat("a", 64)), `job_id "` + strings.Repeat("a", 64) + `"` + nameMsg},
		{"long name is cut", CheckName("model.name", long), `model.name "` + long[:MaxQuoted] + `"… (100000 bytes)` + nameMsg},
		{"long multibyte name is cut at a character", CheckName("model.name", strings.Repeat("é", 100)),
			`model.name "` + strings.Repeat("é", MaxQuoted/2) + `"… (200 bytes)` + nameMsg},

		{"digest version", CheckVersion("version", DigestPrefix+hex64), ""},
		{"alias version", CheckVersion("version", AliasCandidate), ""},
		{"empty version", CheckVersion("version", ""), `version ""` + versionMsg},
		{"short digest", CheckVersion("version", "sha256:xyz"), `version "sha256:xyz"` + versionMsg},
		{"upper-case digest", CheckVersion("version", DigestPrefix+strings.ToUpper(hex64)), `version "sha256:` + strings.ToUpper(hex64) + `"` + versionMsg},

		{"digest", CheckDigest("version", DigestPrefix+hex64), ""},
		{"alias is not a digest", CheckDigest("version", AliasProduction), `version "production"` + digestMsg},
		{"garbage is not a digest", CheckDigest("version", "x"), `version "x"` + digestMsg},

		{"empty ref", CheckRef("generator", "", ""), ""},
		{"full ref", CheckRef("generator", "dcgan-emoji-64", DigestPrefix+hex64), ""},
		{"alias ref", CheckRef("model", "srcnn", AliasProduction), ""},
		{"bad ref name", CheckRef("generator", "Bad_Name", ""), `generator.name "Bad_Name"` + nameMsg},
		{"bad ref version", CheckRef("upscaler", "", "sha256:xyz"), `upscaler.version "sha256:xyz"` + versionMsg},
		{"both bad: the name first", CheckRef("model", "-x", "?"), `model.name "-x"` + nameMsg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if tt.err != nil {
				got = tt.err.Error()
			}
			if got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// The studio page marks the input a message is about by its words ("label",
// then "version", then "model", "generator" or "name"): a bad name must not
// read as a bad version or label.
func TestNameMessageMarksTheNameField(t *testing.T) {
	msg := strings.ToLower(CheckRef("generator", "Bad_Name", "").Error())
	if strings.Contains(msg, "version") || strings.Contains(msg, "label") {
		t.Errorf("name message %q mentions a version or a label", msg)
	}
	if msg := strings.ToLower(CheckRef("generator", "", "?").Error()); strings.Contains(msg, "label") {
		t.Errorf("version message %q mentions a label", msg)
	}
}
