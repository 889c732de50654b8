package registry_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hirez-ml/hirez/proto/hirez/limits"

	"github.com/hirez-ml/hirez/services/trainer/internal/registry"
)

// observed gives reg a logger whose entries the test can read.
func observed(reg *registry.Registry) *observer.ObservedLogs {
	core, logs := observer.New(zap.InfoLevel)
	reg.SetLogger(zap.New(core))
	return logs
}

// TestPublishStandsWhenRetentionFails: once a version is committed and
// announced, a failing retention pass (here: the in-use check errs) is logged;
// Publish still returns the version, which is there with its alias.
func TestPublishStandsWhenRetentionFails(t *testing.T) {
	reg, _ := newRegistry(t)
	logs := observed(reg)
	ctx := context.Background()
	old := publishN(t, reg, "sr", 0, 1)[0]
	reg.Retain(func(context.Context, string, string) (string, error) {
		return "", errors.New("jobs table unreadable")
	}, 1)

	f := filepath.Join(t.TempDir(), "m.safetensors")
	srcnn(t, f, 0.5)
	v, err := reg.Publish(ctx, "sr", registry.KindSRCNN, f, "jobs/j2", nil)
	if err != nil {
		t.Fatalf("publish with a failing retention pass: %v; want the committed version", err)
	}
	if c, err := reg.Resolve(ctx, "sr", limits.AliasCandidate); err != nil || c.Digest != v.Digest {
		t.Fatalf("candidate = %v, %v; want %s", c.Digest, err, v.Digest)
	}
	if _, err := os.Stat(reg.Path("sr", v.Digest)); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Resolve(ctx, "sr", old.Digest); err != nil {
		t.Errorf("the version retention could not delete is gone: %v", err)
	}
	got := logs.FilterMessageSnippet("retention").All()
	if len(got) != 1 || !strings.Contains(got[0].ContextMap()["error"].(string), "jobs table unreadable") {
		t.Fatalf("log entries %+v; want one retention error naming the cause", logs.All())
	}
}

// TestRepublishDuringDeleteKeepsTheFile: deterministic training publishes the
// same bytes again while a delete of that digest runs. Whichever wins, a
// version that exists afterwards has its file. The in-use check (called under
// the registry's lock) holds the delete until the publisher has renamed its
// file into place, or for a while when it cannot (it must not: the rename
// waits for the lock).
func TestRepublishDuringDeleteKeepsTheFile(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "m.safetensors")
	srcnn(t, src, 0.3)
	v, err := reg.Publish(ctx, "sr", registry.KindSRCNN, src, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, reg, "sr", 1, 2) // the candidate moves on: v can be deleted
	path := reg.Path("sr", v.Digest)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	inDelete := make(chan struct{})
	reg.Retain(func(_ context.Context, _, digest string) (string, error) {
		if digest != v.Digest {
			return "", nil
		}
		close(inDelete)
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if now, err := os.Stat(path); err == nil && !os.SameFile(before, now) {
				break // the publisher renamed a new file over v's
			}
		}
		return "", nil
	}, 0)
	deleted := make(chan error, 1)
	go func() { _, err := reg.Delete(ctx, "sr", v.Digest); deleted <- err }()
	<-inDelete
	if _, err := reg.Publish(ctx, "sr", registry.KindSRCNN, src, "", nil); err != nil {
		t.Fatal(err)
	}
	if err := <-deleted; err != nil {
		t.Fatalf("delete: %v", err)
	}

	if _, err := reg.Resolve(ctx, "sr", v.Digest); err != nil {
		t.Fatalf("republished version: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the version is in the registry but its file is not: %v", err)
	}
	if sum := sha256.Sum256(b); limits.DigestPrefix+hex.EncodeToString(sum[:]) != v.Digest {
		t.Fatal("the file does not hold the version's bytes")
	}
}

// TestDeleteAnnouncesWhenTheFileStays: the record is gone once the delete has
// committed, so watchers hear of it even when the file cannot be removed
// (here a non-empty directory stands in its place); the failure is logged.
func TestDeleteAnnouncesWhenTheFileStays(t *testing.T) {
	reg, _ := newRegistry(t)
	logs := observed(reg)
	ctx := context.Background()
	vs := publishN(t, reg, "sr", 0, 2)
	path := reg.Path("sr", vs[0].Digest)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "stuck"), 0o755); err != nil {
		t.Fatal(err)
	}
	sub, err := reg.Watch(ctx, []string{"sr"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Next(ctx); err != nil {
		t.Fatal(err)
	}

	if d, err := reg.Delete(ctx, "sr", vs[0].Digest); err != nil || d.Digest != vs[0].Digest {
		t.Fatalf("delete = %v, %v; want the deleted version", d.Digest, err)
	}
	if ev := nextEvent(t, sub.Next); ev.Type != registry.VersionDeleted || ev.Version != vs[0].Digest {
		t.Fatalf("event %+v; want VersionDeleted of %s", ev, vs[0].Digest)
	}
	if _, err := reg.Resolve(ctx, "sr", vs[0].Digest); err == nil {
		t.Fatal("deleted version still resolves")
	}
	got := logs.FilterField(zap.String("path", path)).All()
	if len(got) != 1 || got[0].Level != zap.ErrorLevel {
		t.Fatalf("log entries %+v; want one error naming %s", logs.All(), path)
	}
}
