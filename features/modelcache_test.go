package features

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/novarec/novarec/internal/metrictest"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

func TestModelCacheSwapsAndRejects(t *testing.T) {
	client, prefix := redistest.New(t)
	store := NewStore(client, Options{Prefix: prefix})
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	c := NewModelCache(store, "default", recommend.DefaultModel(), nil, reg)
	if err := c.Refresh(ctx); err != nil || c.Current().Version != "prior" {
		t.Fatalf("without a snapshot: version %q, err %v", c.Current().Version, err)
	}

	publish := func(version string, fbTS ...int64) {
		m := recommend.DefaultModel()
		m.Version = version
		m.ItemBias = map[string]float32{"a": 1}
		b, err := recommend.EncodeModel(m, recommend.SnapshotMeta{Variant: "default", CreatedMS: time.Now().UnixMilli(), FeedbackTS: fbTS})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.PutModel(ctx, "default", b); err != nil {
			t.Fatal(err)
		}
	}

	now := time.Now().UnixMilli()
	publish("default-1", now-1500, now-500)
	if err := c.Refresh(ctx); err != nil || c.cur.Load().m.Version != "default-1" {
		t.Fatalf("published snapshot was not swapped in: %v", err)
	}
	if got, _ := metrictest.Value(t, reg, "novarec_model_freshness_seconds", nil); got != 0 { // no series yet = 0
		t.Fatalf("freshness observed %v times before any request used the model", got)
	}
	if m := c.Current(); m.ItemBias["a"] != 1 {
		t.Fatalf("served model %+v", m)
	}
	c.Current()
	if got := metrictest.MustValue(t, reg, "novarec_model_freshness_seconds", nil); got != 2 {
		t.Fatalf("freshness observed %v times, want once per included feedback event (2)", got)
	}

	// A corrupt snapshot is rejected; the old model keeps serving.
	if err := store.PutModel(ctx, "default", []byte("NVRM garbage")); err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(ctx); err == nil {
		t.Fatal("corrupt snapshot accepted")
	}
	if c.Current().Version != "default-1" {
		t.Fatalf("serving %q after a corrupt snapshot", c.Current().Version)
	}
}

func TestModelSetServesEachVariant(t *testing.T) {
	client, prefix := redistest.New(t)
	store := NewStore(client, Options{Prefix: prefix})
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	set := NewModelSet(store, recommend.DefaultModel(), nil, reg)
	m := recommend.DefaultModel()
	m.Version = "nov3-4"
	b, err := recommend.EncodeModel(m, recommend.SnapshotMeta{Variant: "nov3"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutModel(ctx, "nov3", b); err != nil {
		t.Fatal(err)
	}
	if v := set.Current("nov3").Version; v != "nov3-4" {
		t.Fatalf("variant nov3 serves %q", v)
	}
	if v := set.Current("control").Version; v != "prior" {
		t.Fatalf("variant without a snapshot serves %q", v)
	}
	// Follows updates of any variant.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go set.Run(rctx)
	m.Version = "control-1"
	b, _ = recommend.EncodeModel(m, recommend.SnapshotMeta{Variant: "control"})
	deadline := time.Now().Add(5 * time.Second)
	for set.Current("control").Version != "control-1" {
		if err := store.PutModel(ctx, "control", b); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("control's snapshot was not swapped in")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
