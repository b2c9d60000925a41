package trainer

import (
	"context"
	"testing"

	"github.com/novarec/novarec/recommend"
)

func TestTrainOnLog(t *testing.T) {
	cat := testCatalog(t, 300)
	s := genStream(cat.s, 8, 12, 9)
	// Half of the log was served to another variant: offline training
	// learns from all of it.
	for i := range s.imps {
		if i%2 == 1 {
			s.imps[i].Variant = "other"
		}
	}
	cfg := DefaultConfig()
	cfg.Variant = "candidate"
	m, c, err := TrainOnLog(context.Background(), cfg, nil, cat, s.imps, s.clicks)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "candidate-offline" || c.Impressions != int64(len(s.imps)) || c.Clicks != int64(len(s.clicks)) || c.Decisions == 0 {
		t.Fatalf("version %q, counters %+v; want every impression and click applied and decisions closed", m.Version, c)
	}
	// Clicked items gained bias, items shown but never clicked lost it,
	// in both variants' impressions.
	var clicked, other []float64
	for _, imp := range s.imps {
		for _, it := range imp.Items {
			if s.clicked[it.ItemID] > 0 {
				clicked = append(clicked, float64(m.ItemBias[it.ItemID]))
			} else {
				other = append(other, float64(m.ItemBias[it.ItemID]))
			}
		}
	}
	if mean(clicked) <= 0 || mean(other) >= 0 {
		t.Errorf("biases did not follow the clicks: clicked mean %v, unclicked mean %v", mean(clicked), mean(other))
	}

	// The same log in another order gives the same model: events are
	// merged by time.
	rev := append(s.imps[:0:0], s.imps...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	m2, _, err := TrainOnLog(context.Background(), cfg, nil, cat, rev, s.clicks)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := recommend.EncodeModel(m, recommend.SnapshotMeta{})
	b2, _ := recommend.EncodeModel(m2, recommend.SnapshotMeta{})
	if string(b1) != string(b2) {
		t.Error("the same events in another order trained another model")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := TrainOnLog(ctx, cfg, nil, cat, s.imps, s.clicks); err == nil {
		t.Error("a cancelled context did not stop training")
	}
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
