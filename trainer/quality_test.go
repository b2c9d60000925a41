package trainer

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/policy"
	"github.com/novarec/novarec/ranker"
	"github.com/novarec/novarec/recommend"
	"github.com/novarec/novarec/replay"
	"github.com/novarec/novarec/sim"
)

// BenchmarkReplicaQuality compares what one trainer and two partitioned
// replicas learn from the same traffic. The traffic is the simulator's
// (package sim: the HRL serving 1,000 simulated users, logged as the
// service logs it); its first 80% (by time) is learned from, either by one
// Core or by two replicas that split the users as Kafka would (user →
// one of 6 partitions → replica 0 or 1: ReplicaOf) and merge into a shared
// model every `merge` events each, exactly as replicas do at their commits
// (mergeModel: mergeDense, mergeItem; then rebaseModel). The learned models are scored on
// the last 20%: for every held-out click, where the clicked item ranks in
// its logged slate under the model's ranker (MRR, hit@1) and the log of its
// softmax probability. The -wnov0 setups learn with w_nov = 0, the reward
// these scores measure: the trainer's default rewards a surprising click
// fourfold, which moves the ranker away from ranking clicks
// (docs/trainer-scale.md#model-quality-with-replicas). Deterministic; no
// Kafka or Redis (the commit path's storage is tested elsewhere, the merge
// is what changes quality).
//
//	go test -run - -bench ReplicaQuality -benchtime 1x ./trainer
func BenchmarkReplicaQuality(b *testing.B) {
	for _, seed := range []uint64{1, 2, 3} {
		log, cat := simulatedLog(b, seed)
		cut := log.Impressions[len(log.Impressions)*8/10].TS
		for _, setup := range []struct {
			name            string
			replicas, merge int
			clicksOnly      bool
		}{
			{"start", 0, 0, false}, {"one", 1, 0, false}, {"two-merge2k", 2, 2000, false}, {"two-merge20k", 2, 20000, false},
			{"one-wnov0", 1, 0, true}, {"two-merge2k-wnov0", 2, 2000, true},
		} {
			b.Run(fmt.Sprintf("seed%d/%s", seed, setup.name), func(b *testing.B) {
				cfg := DefaultConfig()
				if setup.clicksOnly {
					cfg.Learner.Reward.Novelty = 0
				}
				var q quality
				for b.Loop() {
					m := learnSplit(b, cfg, log, cat, cut, setup.replicas, setup.merge)
					q = score(m, log, cut)
				}
				b.ReportMetric(q.mrr, "MRR")
				b.ReportMetric(q.hit1, "hit@1")
				b.ReportMetric(q.ll, "loglik/click")
				b.ReportMetric(float64(q.n), "clicks")
			})
		}
	}
}

// simulatedLog runs the simulator with the HRL on seed and returns its log
// and catalog.
func simulatedLog(b *testing.B, seed uint64) (*replay.EventLog, fixedCatalog) {
	b.Helper()
	cfg := sim.DefaultConfig()
	snap, err := catalog.Build(1, catalog.DefaultDim, catalog.Sample(cfg.Items, cfg.CatalogSeed))
	if err != nil {
		b.Fatal(err)
	}
	cfg.Catalog = snap
	p, err := sim.NewPolicy(policy.HRL, cfg.Policy)
	if err != nil {
		b.Fatal(err)
	}
	rec := &replay.Recorder{Variant: DefaultVariant, Model: "sim"}
	if _, err := sim.RunObserved(context.Background(), cfg, p, seed, rec); err != nil {
		b.Fatal(err)
	}
	slices.SortStableFunc(rec.Log.Impressions, func(x, y events.Impression) int { return cmp.Compare(x.TS, y.TS) })
	slices.SortStableFunc(rec.Log.Feedback, func(x, y events.Feedback) int { return cmp.Compare(x.TS, y.TS) })
	return &rec.Log, fixedCatalog{snap}
}

// learnSplit learns from the events before cut with one Core (replicas
// 0: the starting model, unchanged; 1: one trainer) or with replicas
// merging every merge events each, learning as cfg says.
func learnSplit(b *testing.B, cfg Config, log *replay.EventLog, cat fixedCatalog, cut int64, replicas, merge int) *recommend.Model {
	b.Helper()
	if replicas == 0 {
		return recommend.DefaultModel()
	}
	shared := recommend.DefaultModel()
	type rep struct {
		c    *Core
		base *recommend.Model
		n    int
		// baseLearned and baseShared are the learner's and the shared
		// model's update counts as of base.
		baseLearned, baseShared int64
	}
	var sharedUpdates int64
	reps := make([]*rep, replicas)
	for i := range reps {
		c, err := NewCore(cfg, recommend.DefaultModel(), cat) // = shared, a copy of its own
		if err != nil {
			b.Fatal(err)
		}
		reps[i] = &rep{c: c, base: c.Learner().Snapshot("base")}
	}
	replicaOf := func(user string) *rep { return reps[ReplicaOf(user, replicas)] }
	seed := func(id string) []float32 {
		if j, ok := cat.s.Index(id); ok {
			return cat.s.Embedding(j)
		}
		return nil
	}
	// What a replica's commit does to the shared model (commitReplica,
	// rebase), without the store.
	commit := func(r *rep) {
		local := r.c.Learner().Model()
		learned := r.c.Learner().Updates() - r.baseLearned
		shared = mergeModel(shared, r.base, local, intentShare(learned, sharedUpdates-r.baseShared), seed)
		rebaseModel(local, shared)
		r.base = r.c.Learner().Snapshot("base")
		sharedUpdates += learned
		r.baseLearned, r.baseShared = r.c.Learner().Updates(), sharedUpdates
	}
	imps, fbs := log.Impressions, log.Feedback
	for i, f := 0, 0; ; {
		imp := i < len(imps) && imps[i].TS < cut && (f == len(fbs) || imps[i].TS <= fbs[f].TS)
		fb := !imp && f < len(fbs) && fbs[f].TS < cut
		var r *rep
		switch {
		case imp:
			r = replicaOf(imps[i].UserID)
			r.c.Impression(imps[i])
			i++
		case fb:
			r = replicaOf(fbs[f].UserID)
			r.c.Feedback(fbs[f])
			f++
		default:
			if replicas == 1 {
				return reps[0].c.Learner().Model()
			}
			for _, r := range reps {
				commit(r)
			}
			return shared
		}
		if r.n++; replicas > 1 && r.n%merge == 0 {
			commit(r)
		}
	}
}

// quality is how well a model ranks held-out clicks within their slates.
type quality struct {
	mrr, hit1, ll float64
	n             int
}

// score ranks every click after cut within its logged slate by m's ranker
// score, as the learner computes it (recommend.Learner.Click).
func score(m *recommend.Model, log *replay.EventLog, cut int64) quality {
	slates := map[string]*events.Impression{}
	for i := range log.Impressions {
		if im := &log.Impressions[i]; im.TS >= cut {
			slates[im.RequestID] = im
		}
	}
	var q quality
	for _, fb := range log.Feedback {
		im := slates[fb.RequestID]
		if im == nil || fb.Type != events.FeedbackClick {
			continue
		}
		level := m.Intent.Levels[min(max(im.Intent.Level, 0), len(m.Intent.Levels)-1)]
		scores := make([]float64, len(im.Items))
		a := -1
		for j, it := range im.Items {
			var f [ranker.NumFeatures]float64
			copy(f[:], it.Features)
			if e, ok := m.ItemEmb[it.ItemID]; ok && len(im.Taste) == len(e) {
				f[ranker.FDot] = float64(catalog.Dot(im.Taste, e))
			}
			f[ranker.FBias] = float64(m.ItemBias[it.ItemID])
			scores[j] = m.Ranker.Score(&ranker.Candidate{Features: f, Novelty: it.Novelty}, ranker.Knobs{Beta: level.Beta}) / m.Ranker.Temperature
			if it.ItemID == fb.ItemID {
				a = j
			}
		}
		if a < 0 {
			continue
		}
		rank, top, total := 1, slices.Max(scores), 0.0
		for j, s := range scores {
			if s > scores[a] || (s == scores[a] && j < a) {
				rank++
			}
			total += math.Exp(s - top)
		}
		q.n++
		q.mrr += 1 / float64(rank)
		if rank == 1 {
			q.hit1++
		}
		q.ll += scores[a] - top - math.Log(total)
	}
	if q.n > 0 {
		q.mrr, q.hit1, q.ll = q.mrr/float64(q.n), q.hit1/float64(q.n), q.ll/float64(q.n)
	}
	return q
}
