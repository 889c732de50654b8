package registry_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/proto/hirez/limits"

	"github.com/hirez-ml/hirez/services/trainer/internal/registry"
)

// publishN publishes srcnn versions from..to-1 of name (each distinct), oldest first.
func publishN(t *testing.T, reg *registry.Registry, name string, from, to int) []registry.Version {
	t.Helper()
	var out []registry.Version
	for i := from; i < to; i++ {
		f := filepath.Join(t.TempDir(), "m.safetensors")
		srcnn(t, f, 0.01*float64(i+1))
		v, err := reg.Publish(context.Background(), name, registry.KindSRCNN, f, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// nextEvent returns the next change of a watch, failing after a while.
func nextEvent(t *testing.T, next func(context.Context) (registry.Change, error)) *registry.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := next(ctx)
	if err != nil || ch.Event == nil {
		t.Fatalf("next change = %+v, %v; want an event", ch, err)
	}
	return ch.Event
}

func TestDeleteVersion(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := context.Background()
	vs := publishN(t, reg, "sr", 0, 3) // candidate → vs[2]
	for _, a := range []string{limits.AliasProduction, "rollback"} {
		if _, _, err := reg.SetAlias(ctx, "sr", a, vs[1].Digest); err != nil {
			t.Fatal(err)
		}
	}
	busy := ""
	reg.Retain(func(_ context.Context, model, digest string) (string, error) {
		if model == "sr" && digest == busy {
			return "jobs/j1 (queued) starts from it", nil
		}
		return "", nil
	}, 0)
	sub, err := reg.Watch(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if ch, err := sub.Next(ctx); err != nil || ch.Event != nil {
		t.Fatalf("first change %+v, %v; want the snapshot", ch, err)
	}

	// Refusals change nothing.
	unknown := limits.DigestPrefix + strings.Repeat("0", 64)
	for _, c := range []struct {
		name, model, version string
		kind                 fault.Kind
		msg                  string
	}{
		{"production and rollback", "sr", vs[1].Digest, fault.KindFailedPrecondition, `aliases "production", "rollback" of sr point at`},
		{"candidate", "sr", vs[2].Digest, fault.KindFailedPrecondition, `alias "candidate"`},
		{"unknown digest", "sr", unknown, fault.KindNotFound, "no version"},
		{"unknown model", "nope", unknown, fault.KindNotFound, `"nope"`},
		{"an alias", "sr", "production", fault.KindInvalid, "not an alias"},
		{"bad name", "../sr", vs[0].Digest, fault.KindInvalid, "is not a valid name"},
	} {
		_, err := reg.Delete(ctx, c.model, c.version)
		if fault.KindOf(err) != c.kind || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("delete %s: %v; want %v mentioning %s", c.name, err, c.kind, c.msg)
		}
	}
	busy = vs[0].Digest
	if _, err := reg.Delete(ctx, "sr", vs[0].Digest); fault.KindOf(err) != fault.KindFailedPrecondition || !strings.Contains(err.Error(), "jobs/j1") {
		t.Errorf("delete a version a job starts from: %v", err)
	}
	busy = ""
	if got, _, _ := reg.ListVersions(ctx, "sr", 10, ""); len(got) != 3 {
		t.Fatalf("%d versions after refused deletes, want 3", len(got))
	}

	// The unaliased version goes: record, file and an event.
	path := reg.Path("sr", vs[0].Digest)
	d, err := reg.Delete(ctx, "sr", vs[0].Digest)
	if err != nil || d.Digest != vs[0].Digest {
		t.Fatalf("delete = %v, %v", d.Digest, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file still there: %v", err)
	}
	if _, err := reg.Resolve(ctx, "sr", vs[0].Digest); fault.KindOf(err) != fault.KindNotFound {
		t.Errorf("resolve deleted: %v", err)
	}
	ev := nextEvent(t, sub.Next)
	if ev.Type != registry.VersionDeleted || ev.Model != "sr" || ev.Version != vs[0].Digest {
		t.Errorf("event %+v; want VersionDeleted of %s", ev, vs[0].Digest)
	}
	if _, err := reg.Delete(ctx, "sr", vs[0].Digest); fault.KindOf(err) != fault.KindNotFound {
		t.Errorf("delete twice: %v", err)
	}
	if got, _, _ := reg.ListVersions(ctx, "sr", 10, ""); len(got) != 2 {
		t.Fatalf("%d versions after delete, want 2", len(got))
	}
}

// TestKeepVersions: with keep 2, publishing deletes the versions older than
// the newest two that have no alias and are not in use, with an event each.
func TestKeepVersions(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := context.Background()
	vs := publishN(t, reg, "sr", 0, 2)
	if _, _, err := reg.SetAlias(ctx, "sr", limits.AliasProduction, vs[0].Digest); err != nil {
		t.Fatal(err)
	}
	reg.Retain(nil, 2)
	sub, err := reg.Watch(ctx, []string{"sr"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Next(ctx); err != nil {
		t.Fatal(err)
	}
	vs = append(vs, publishN(t, reg, "sr", 2, 5)...) // v2, v3, v4
	// Each publish: created, candidate moved, then at most one deletion:
	// v2 keeps v2, v1 (v0 is production); v3 deletes v1; v4 deletes v2.
	var deleted []string
	for range 8 {
		ev := nextEvent(t, sub.Next)
		if ev.Type == registry.VersionDeleted {
			deleted = append(deleted, ev.Version)
		}
	}
	if len(deleted) != 2 || deleted[0] != vs[1].Digest || deleted[1] != vs[2].Digest {
		t.Fatalf("deleted %v; want v1 %s then v2 %s", deleted, vs[1].Digest, vs[2].Digest)
	}
	got, _, err := reg.ListVersions(ctx, "sr", 10, "")
	if err != nil || len(got) != 3 || got[0].Digest != vs[4].Digest || got[1].Digest != vs[3].Digest || got[2].Digest != vs[0].Digest {
		t.Fatalf("versions left %v, %v; want v4, v3 and production v0", got, err)
	}
}
