package job_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/platform/fault"

	"github.com/hirez-ml/hirez/services/trainer/internal/job"
	"github.com/hirez-ml/hirez/services/trainer/internal/registry"
)

// publishESPCN publishes an espcn-x2 version of "espcn-t" whose first weight
// is w, so that each w gives a version of its own.
func publishESPCN(t *testing.T, reg *registry.Registry, w float32) registry.Version {
	t.Helper()
	net, err := model.Build("espcn-x2", ref.New(), model.Options{Side: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	p := net.Params()[0]
	data, err := p.Value.Host()
	if err != nil {
		t.Fatal(err)
	}
	data[0] = w
	if err := p.Value.CopyFromHost(data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := net.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	v, err := reg.Publish(context.Background(), "espcn-t", registry.KindESPCN, path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRetentionFailureDoesNotFailTheJob: the job's version is published (and
// announced) before retention runs, so a failing retention pass leaves the job
// SUCCEEDED with that version as its result.
func TestRetentionFailureDoesNotFailTheJob(t *testing.T) {
	f := newFixture(t, &fakeRunner{n: 1}, "")
	ctx := context.Background()
	old := publishESPCN(t, f.reg, 0.25)
	f.reg.Retain(func(context.Context, string, string) (string, error) {
		return "", errors.New("jobs table unreadable")
	}, 1)
	if _, err := f.m.Create(ctx, "kept", spec()); err != nil {
		t.Fatal(err)
	}
	j := waitFor(t, f.m, "kept", job.Succeeded)
	if j.Result == nil || j.Result.Version == old.Digest {
		t.Fatalf("result %+v; want the job's own version", j.Result)
	}
	if v, err := f.reg.Resolve(ctx, "espcn-t", "candidate"); err != nil || v.Digest != j.Result.Version {
		t.Fatalf("candidate %v, %v; want %s", v.Digest, err, j.Result.Version)
	}
}

// TestInitFromIsPinnedBeforeADeleteCanLook: a job created with init_from while
// a delete of that version is between its in-use check and its commit must not
// end up queued on a deleted version. The in-use check (run under the
// registry's lock) waits for Create to return, or for a while when Create
// cannot return (it must not: resolving and inserting wait for the lock).
// Exactly one of them wins: here the delete, and Create reports init_from.
func TestInitFromIsPinnedBeforeADeleteCanLook(t *testing.T) {
	f := newFixture(t, &fakeRunner{n: 1, block: true}, "")
	ctx := context.Background()
	v := publishESPCN(t, f.reg, 0.25)
	publishESPCN(t, f.reg, 0.5) // the candidate moves on: v can be deleted

	inDelete, created := make(chan struct{}), make(chan struct{})
	f.reg.Retain(func(ctx context.Context, model, digest string) (string, error) {
		why, err := f.m.StartsFrom(ctx, model, digest)
		if digest == v.Digest {
			close(inDelete)
			select {
			case <-created:
			case <-time.After(2 * time.Second):
			}
		}
		return why, err
	}, 0)
	deleted := make(chan error, 1)
	go func() { _, err := f.reg.Delete(ctx, "espcn-t", v.Digest); deleted <- err }()
	<-inDelete
	s := spec()
	s.InitFrom = &job.Ref{Name: "espcn-t", Version: v.Digest}
	_, createErr := f.m.Create(ctx, "warm", s)
	close(created)
	deleteErr := <-deleted

	if createErr == nil && deleteErr == nil {
		t.Fatalf("both the delete of %s and a job starting from it succeeded: the job is queued on a deleted version", v.Digest)
	}
	if deleteErr != nil {
		t.Fatalf("delete: %v; the delete began first and should win", deleteErr)
	}
	if fault.KindOf(createErr) != fault.KindInvalid || !strings.Contains(createErr.Error(), "spec.init_from") {
		t.Fatalf("create from a deleted version: %v; want InvalidArgument naming spec.init_from", createErr)
	}
	if _, err := f.m.Get(ctx, "warm"); fault.KindOf(err) != fault.KindNotFound {
		t.Fatalf("job after a refused create: %v; want NotFound", err)
	}
}

// TestInitFromPinsTheDigest: an alias in init_from is resolved once and the
// job records the digest; the version is then in use and cannot be deleted.
func TestInitFromPinsTheDigest(t *testing.T) {
	f := newFixture(t, &fakeRunner{n: 1, block: true}, "")
	ctx := context.Background()
	v := publishESPCN(t, f.reg, 0.25)
	if _, _, err := f.reg.SetAlias(ctx, "espcn-t", "base", v.Digest); err != nil {
		t.Fatal(err)
	}
	f.reg.Retain(f.m.StartsFrom, 0)
	s := spec()
	s.InitFrom = &job.Ref{Name: "espcn-t", Version: "base"}
	j, err := f.m.Create(ctx, "warm", s)
	if err != nil {
		t.Fatal(err)
	}
	if j.Spec.InitFrom == nil || j.Spec.InitFrom.Version != v.Digest {
		t.Fatalf("init_from recorded as %+v; want pinned to %s", j.Spec.InitFrom, v.Digest)
	}
	if _, _, err := f.reg.SetAlias(ctx, "espcn-t", "base", publishESPCN(t, f.reg, 0.5).Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Delete(ctx, "espcn-t", v.Digest); fault.KindOf(err) != fault.KindFailedPrecondition || !strings.Contains(err.Error(), "jobs/warm") {
		t.Fatalf("delete a version a queued job starts from: %v; want FailedPrecondition naming jobs/warm", err)
	}
}
