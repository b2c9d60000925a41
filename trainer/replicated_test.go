package trainer

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/policy"
	"github.com/novarec/novarec/recommend"
	"github.com/novarec/novarec/sim"
)

// recordingPolicy is one replica's HRL that notes the users it served and
// the events it learned from.
type recordingPolicy struct {
	OfflinePolicy
	users   map[string]bool
	events  int
	serving *recommend.Model
}

func (p *recordingPolicy) ServeFrom(m *recommend.Model) {
	p.serving = m
	p.OfflinePolicy.ServeFrom(m)
}

func (p *recordingPolicy) Recommend(st *recommend.UserState, snap *catalog.Snapshot, k int, now int64, rng *rand.Rand) (recommend.Decision, error) {
	p.users[st.UserID] = true
	return p.OfflinePolicy.Recommend(st, snap, k, now, rng)
}

func (p *recordingPolicy) Learn(snap *catalog.Snapshot, d *recommend.Decision, clicked []string, ended bool) {
	p.events += 1 + len(clicked)
	p.OfflinePolicy.Learn(snap, d, clicked, ended)
}

func (p *recordingPolicy) Flush() { p.OfflinePolicy.(policy.Flusher).Flush() }

func replicatedRun(t *testing.T, n, every int) (*Replicated, []*recordingPolicy, *recommend.Model) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Users, cfg.Sessions, cfg.Steps, cfg.Items = 60, 3, 6, 600
	var reps []*recordingPolicy
	r, err := NewReplicated("hrl/2", n, every, func() (OfflinePolicy, error) {
		p, err := policy.New(policy.HRL, cfg.Policy)
		if err != nil {
			return nil, err
		}
		rp := &recordingPolicy{OfflinePolicy: p.(OfflinePolicy), users: map[string]bool{}}
		reps = append(reps, rp)
		return rp, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	start := reps[0].Model().Clone()
	if _, err := sim.Run(context.Background(), cfg, r, 1); err != nil {
		t.Fatal(err)
	}
	return r, reps, start
}

// TestReplicatedSplitsUsersAndSumsUpdates runs the simulator with two
// replicas that merge only at the end: each replica serves and learns from
// the users of its partitions only, and the shared model is the start plus
// both replicas' steps; afterwards the last to merge learns on a copy of
// it, and no replica's embeddings are the shared model's.
func TestReplicatedSplitsUsersAndSumsUpdates(t *testing.T) {
	r, reps, start := replicatedRun(t, 2, 1<<30)
	if r.Merges() != 0 {
		t.Fatalf("%d merges before the end", r.Merges())
	}
	for i, p := range reps {
		if len(p.users) == 0 {
			t.Fatalf("replica %d served no user", i)
		}
		for u := range p.users {
			if ReplicaOf(u, 2) != i {
				t.Errorf("replica %d served %s, of replica %d", i, u, ReplicaOf(u, 2))
			}
		}
	}
	var want [len(start.Ranker.Theta)]float64
	for f := range want {
		want[f] = start.Ranker.Theta[f]
		for _, p := range reps {
			want[f] += p.Model().Ranker.Theta[f] - start.Ranker.Theta[f]
		}
	}
	r.Flush()
	shared := r.Model()
	if r.Merges() != 2 {
		t.Errorf("%d merges at the end, want 2", r.Merges())
	}
	for f, w := range want {
		if got := shared.Ranker.Theta[f]; math.Abs(got-w) > 1e-12 {
			t.Errorf("theta[%d] = %v, want the sum of both replicas' steps %v", f, got, w)
		}
	}
	if want == start.Ranker.Theta || len(shared.ItemEmb) == 0 {
		t.Fatal("the replicas learned no ranker weights or embeddings")
	}
	if err := shared.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, p := range reps {
		local := p.Model()
		// The last to merge holds the shared model; the first, the shared
		// model before the last merge.
		if last := i == len(reps)-1; last && (local.Ranker != shared.Ranker || len(local.ItemBias) != len(shared.ItemBias) || len(local.ItemEmb) != len(shared.ItemEmb)) {
			t.Fatalf("replica %d is not rebased on the shared model", i)
		}
		for id, e := range local.ItemEmb {
			was := shared.ItemEmb[id][0]
			e[0] += 1 // as the learner updates in place
			if shared.ItemEmb[id][0] != was {
				t.Fatalf("replica %d's embedding of %s is the shared model's", i, id)
			}
			e[0] -= 1
			break
		}
	}
}

// TestReplicatedCommitsEveryInterval checks that replicas commit at the end
// of every interval of `every` events of the stream (whatever the number of
// replicas, as the service's commit interval is time), each that learned,
// and serve the shared model.
func TestReplicatedCommitsEveryInterval(t *testing.T) {
	const every = 40
	r, reps, _ := replicatedRun(t, 2, every)
	total := 0
	for i, p := range reps {
		total += p.events
		if p.serving != r.Model() {
			t.Errorf("replica %d does not serve the shared model", i)
		}
	}
	if intervals := total / every; intervals < 4 || r.Merges() < intervals || r.Merges() > 2*intervals {
		t.Errorf("%d merges in %d intervals of two replicas", r.Merges(), intervals)
	}
}

func TestNewReplicatedRejectsBadCounts(t *testing.T) {
	build := func() (OfflinePolicy, error) {
		p, err := policy.New(policy.HRL, policy.DefaultConfig())
		return p.(OfflinePolicy), err
	}
	for _, c := range []struct{ n, every int }{{0, 10}, {7, 10}, {2, 0}} {
		if _, err := NewReplicated("x", c.n, c.every, build); err == nil {
			t.Errorf("NewReplicated(%d, %d) accepted", c.n, c.every)
		}
	}
}
