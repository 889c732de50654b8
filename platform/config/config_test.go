package config_test

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hirez-ml/hirez/platform/config"
)

func TestEnvName(t *testing.T) {
	for flagName, want := range map[string]string{
		"grpc-addr":        "HIREZ_GRPC_ADDR",
		"tls-client-ca":    "HIREZ_TLS_CLIENT_CA",
		"shutdown-timeout": "HIREZ_SHUTDOWN_TIMEOUT",
		"max-batch":        "HIREZ_MAX_BATCH",
	} {
		if got := config.EnvName(flagName); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

type parsed struct {
	shared   config.Server
	maxBatch int
}

func parse(args []string, env map[string]string) (parsed, error) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	shared := config.Register(fs, ":9001")
	maxBatch := fs.Int("max-batch", 8, "service flag")
	if err := fs.Parse(args); err != nil {
		return parsed{}, err
	}
	err := config.ApplyEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return parsed{*shared, *maxBatch}, err
}

func TestFlagsAndEnv(t *testing.T) {
	def := config.Defaults(":9001")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(*parsed)
		wantErr []string // substrings of the error
	}{
		{name: "defaults", want: func(*parsed) {}},
		{
			name: "env fills shared and service flags",
			env: map[string]string{
				"HIREZ_GRPC_ADDR": ":7000", "HIREZ_SHUTDOWN_TIMEOUT": "3s", "HIREZ_LOG_FORMAT": "console",
				"HIREZ_TLS_CLIENT_CA": "/ca.pem", "HIREZ_MAX_BATCH": "32", "HIREZ_METRICS_ADDR": "",
			},
			want: func(p *parsed) {
				p.shared.GRPCAddr, p.shared.ShutdownTimeout, p.shared.LogFormat = ":7000", 3*time.Second, "console"
				p.shared.TLSClientCA, p.maxBatch, p.shared.MetricsAddr = "/ca.pem", 32, ""
			},
		},
		{
			name: "command line wins over env",
			args: []string{"--grpc-addr=:7001", "--max-batch", "4"},
			env:  map[string]string{"HIREZ_GRPC_ADDR": ":7000", "HIREZ_MAX_BATCH": "32", "HIREZ_LOG_LEVEL": "debug"},
			want: func(p *parsed) { p.shared.GRPCAddr, p.maxBatch, p.shared.LogLevel = ":7001", 4, "debug" },
		},
		{
			name:    "bad env duration names variable and flag",
			env:     map[string]string{"HIREZ_SHUTDOWN_TIMEOUT": "soon"},
			wantErr: []string{"HIREZ_SHUTDOWN_TIMEOUT", "--shutdown-timeout", `"soon"`},
		},
		{
			name:    "bad env int of a service flag",
			env:     map[string]string{"HIREZ_MAX_BATCH": "many"},
			wantErr: []string{"HIREZ_MAX_BATCH", "--max-batch"},
		},
		{
			name:    "bad env choice",
			env:     map[string]string{"HIREZ_LOG_FORMAT": "xml"},
			wantErr: []string{"HIREZ_LOG_FORMAT", "--log-format", "json, console"},
		},
		{
			name:    "bad flag choice",
			args:    []string{"--log-level", "loud"},
			wantErr: []string{"-log-level", "debug, info, warn, error"},
		},
		{
			name:    "every bad env value reported",
			env:     map[string]string{"HIREZ_MAX_BATCH": "x", "HIREZ_DRAIN_DELAY": "y"},
			wantErr: []string{"HIREZ_MAX_BATCH", "HIREZ_DRAIN_DELAY"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(tt.args, tt.env)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("no error")
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := parsed{def, 8}
			tt.want(&want)
			if got != want {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseProcessEnv(t *testing.T) {
	t.Setenv("HIREZ_GRPC_ADDR", ":7777")
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	shared := config.Register(fs, ":9001")
	if err := config.Parse(fs, nil); err != nil {
		t.Fatal(err)
	}
	if shared.GRPCAddr != ":7777" {
		t.Errorf("GRPCAddr = %q", shared.GRPCAddr)
	}

	t.Setenv("HIREZ_GRPC_ADDR", "")
	for _, args := range [][]string{{"--no-such-flag"}, {"stray"}} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		config.Register(fs, ":9001")
		if _, ok := errors.AsType[*config.UsageError](config.Parse(fs, args)); !ok {
			t.Errorf("Parse(%q): want a *UsageError", args)
		}
	}
	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := config.Parse(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*config.Server)
		wantErr string
	}{
		{"defaults", func(*config.Server) {}, ""},
		{"tls pair", func(c *config.Server) { c.TLSCert, c.TLSKey = "c", "k" }, ""},
		{"mtls", func(c *config.Server) { c.TLSCert, c.TLSKey, c.TLSClientCA = "c", "k", "ca" }, ""},
		{"cert without key", func(c *config.Server) { c.TLSCert = "c" }, "HIREZ_TLS_KEY"},
		{"client ca without cert", func(c *config.Server) { c.TLSClientCA = "ca" }, "--tls-client-ca"},
		{"empty grpc addr", func(c *config.Server) { c.GRPCAddr = "" }, "HIREZ_GRPC_ADDR"},
		{"negative timeout", func(c *config.Server) { c.ShutdownTimeout = -1 }, "--shutdown-timeout"},
		{"bad format", func(c *config.Server) { c.LogFormat = "xml" }, "--log-format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Defaults(":1")
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
			if _, ok := errors.AsType[*config.UsageError](err); !ok {
				t.Error("want a *UsageError")
			}
		})
	}
}
