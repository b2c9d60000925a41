package replay

import (
	"bytes"
	"context"
	"reflect"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/policy"
	"github.com/novarec/novarec/recommend"
	"github.com/novarec/novarec/sim"
)

// A simulated run kept by a Recorder reads back through the consumers'
// strict decoders as the same events, and every feedback event answers the
// impression it names.
func TestRecorderRoundTrip(t *testing.T) {
	snap, err := catalog.Build(1, catalog.DefaultDim, catalog.Sample(600, 1))
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig()
	cfg.Users, cfg.Sessions, cfg.Steps, cfg.Catalog = 40, 3, 5, snap
	p, err := sim.NewPolicy(policy.HRL, cfg.Policy)
	if err != nil {
		t.Fatal(err)
	}
	rec := &Recorder{Variant: "v1", Model: "sim-hrl"}
	res, err := sim.RunObserved(context.Background(), cfg, p, 3, rec)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(rec.Log.Impressions)) != res.Decisions || len(rec.Log.Feedback) == 0 {
		t.Fatalf("%d impressions for %d decisions, %d feedback events", len(rec.Log.Impressions), res.Decisions, len(rec.Log.Feedback))
	}
	var buf bytes.Buffer
	if err := rec.Log.WriteJSONLines(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadEventLog(&buf, "sim")
	if err != nil {
		t.Fatal(err)
	}
	if back.Skipped != 0 || len(back.Impressions) != len(rec.Log.Impressions) || len(back.Feedback) != len(rec.Log.Feedback) {
		t.Fatalf("read back %d impressions, %d feedback, %d skipped (first error %v)", len(back.Impressions), len(back.Feedback), back.Skipped, back.FirstError)
	}
	byID := map[string]int{}
	for i, im := range rec.Log.Impressions {
		byID[im.RequestID] = i
	}
	for _, im := range back.Impressions {
		if !reflect.DeepEqual(im, rec.Log.Impressions[byID[im.RequestID]]) {
			t.Fatalf("impression %s changed in the round trip", im.RequestID)
		}
	}
	clicks := 0
	for _, f := range back.Feedback {
		i, ok := byID[f.RequestID]
		if !ok || f.Variant != "v1" {
			t.Fatalf("feedback %s names no impression", f.EventID)
		}
		im := rec.Log.Impressions[i]
		if im.UserID != f.UserID || im.SessionID != f.SessionID || f.TS < im.TS {
			t.Fatalf("feedback %+v does not answer impression %s", f, im.RequestID)
		}
		if f.Type == recommend.Click {
			clicks++
		}
	}
	if int64(clicks) != res.Clicks {
		t.Errorf("%d clicks logged, the run had %d", clicks, res.Clicks)
	}
}
