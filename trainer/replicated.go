package trainer

import (
	"errors"
	"hash/fnv"
	"math/rand/v2"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/recommend"
)

// Partitioned replicas inside an offline loop (the simulator's, replay's),
// so that what they learn online can be measured against one trainer's
// (docs/trainer-scale.md#model-quality-with-replicas). The service splits
// the learning by user: a user's events go to one Kafka partition (the
// producers hash the user id, FNV-1a), and the range assignment gives
// each replica a contiguous run of partitions. Each replica learns on a
// local copy of the shared model and, at each commit, adds local − base to
// it and rebases; Replicated does the same with the same merge (mergeModel,
// built of commitReplica's mergeDense and mergeItem), every Every events of
// a replica in place of every commit interval.

// OfflinePolicy is what Replicated needs of each replica: a policy of the
// offline comparisons (policy.New's) with the working model it serves from
// and learns on.
type OfflinePolicy interface {
	Name() string
	Recommend(st *recommend.UserState, snap *catalog.Snapshot, k int, now int64, rng *rand.Rand) (recommend.Decision, error)
	Learn(snap *catalog.Snapshot, d *recommend.Decision, clicked []string, sessionEnded bool)
	// Model is the working model, changed in place by Learn; Replicated
	// rebases it at each merge, as a replica rebases its learner's.
	Model() *recommend.Model
}

// ReplicaPartitions is how many partitions Replicated spreads users over
// (the test cluster's and bench/replicas' six, a multiple of 1, 2 and 3).
const ReplicaPartitions = 6

// Replicated runs one policy as n partitioned replicas: each user is served
// and learned from by the replica that owns the user's partition, on that
// replica's local model, and a replica merges what it learned into the
// shared model every Every of its events (an impression, or a click, as the
// trainer counts messages). With n = 1 it is one partitioned replica, which
// learns what the policy alone learns but for the merge's rounding and its
// mode model (mergeModes moves the shared one halfway to each new fit). Not
// safe for concurrent use, like the policies it wraps.
type Replicated struct {
	name  string
	every int
	reps  []*offlineReplica
	// shared is the shared model; cur the replica of the last Recommend,
	// which Learn attributes its decision to.
	shared *recommend.Model
	cur    *offlineReplica
	snap   *catalog.Snapshot // the last seen: the embeddings items start from
	merges int
}

type offlineReplica struct {
	p      OfflinePolicy
	base   *recommend.Model
	events int
}

// NewReplicated builds n replicas with newPolicy (each a fresh policy on the
// same starting model), named name, merging every every events of each.
func NewReplicated(name string, n, every int, newPolicy func() (OfflinePolicy, error)) (*Replicated, error) {
	if n < 1 || n > ReplicaPartitions || every < 1 {
		return nil, errors.New("trainer: replicas must be 1..6 and merge every ≥ 1 events")
	}
	r := &Replicated{name: name, every: every}
	for range n {
		p, err := newPolicy()
		if err != nil {
			return nil, err
		}
		r.reps = append(r.reps, &offlineReplica{p: p, base: cloneModel(p.Model())})
	}
	r.shared = cloneModel(r.reps[0].p.Model())
	r.cur = r.reps[0]
	return r, nil
}

// cloneModel is an immutable deep copy of m.
func cloneModel(m *recommend.Model) *recommend.Model {
	return recommend.NewLearner(recommend.LearnerConfig{}, m).Snapshot(m.Version)
}

// ReplicaOf is the replica of n (range assignment of ReplicaPartitions
// partitions) that owns user's partition.
func ReplicaOf(user string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(user))
	return int(h.Sum32()%ReplicaPartitions) * n / ReplicaPartitions
}

// Name is the name NewReplicated was given.
func (r *Replicated) Name() string { return r.name }

// Merges counts the merges made so far.
func (r *Replicated) Merges() int { return r.merges }

// Model is the shared model as of the last merge, the one the service
// would serve: the evaluation loops read users' feedback under its mode
// model, as the feature updater reads events under the served model.
func (r *Replicated) Model() *recommend.Model { return r.shared }

// ModelsIntent reports whether the replicas' decisions carry an intent
// estimate (policy.IntentModeler).
func (r *Replicated) ModelsIntent() bool {
	im, ok := r.reps[0].p.(interface{ ModelsIntent() bool })
	return ok && im.ModelsIntent()
}

// Recommend serves st's user from its replica's model.
func (r *Replicated) Recommend(st *recommend.UserState, snap *catalog.Snapshot, k int, now int64, rng *rand.Rand) (recommend.Decision, error) {
	if st != nil {
		r.cur = r.reps[ReplicaOf(st.UserID, len(r.reps))]
	}
	return r.cur.p.Recommend(st, snap, k, now, rng)
}

// Learn feeds the decision back to the replica that made it, and merges
// that replica when it has seen another Every events.
func (r *Replicated) Learn(snap *catalog.Snapshot, d *recommend.Decision, clicked []string, sessionEnded bool) {
	c := r.cur
	c.p.Learn(snap, d, clicked, sessionEnded)
	if snap != nil {
		r.snap = snap
	}
	before := c.events / r.every
	c.events += 1 + len(clicked)
	if c.events/r.every != before {
		r.merge(c)
	}
}

// Flush closes the replicas' held-back decisions and merges every replica,
// as the replicas' final commits do.
func (r *Replicated) Flush() {
	for _, c := range r.reps {
		if f, ok := c.p.(interface{ Flush() }); ok {
			f.Flush()
		}
		r.merge(c)
	}
}

// merge is c's commit: the shared model takes c's updates since its last
// merge, and c's local model becomes the shared model.
func (r *Replicated) merge(c *offlineReplica) {
	local := c.p.Model()
	var seed func(string) []float32
	if snap := r.snap; snap != nil {
		seed = func(id string) []float32 {
			if i, ok := snap.Index(id); ok {
				return snap.Embedding(i)
			}
			return nil
		}
	}
	r.shared = mergeModel(r.shared, c.base, local, seed)
	rebaseModel(local, r.shared)
	c.base = cloneModel(local)
	r.merges++
}
