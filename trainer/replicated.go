package trainer

import (
	"errors"
	"math/rand/v2"

	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/policy"
	"github.com/novarec/novarec/recommend"
)

// Partitioned replicas inside an offline loop (the simulator's, replay's),
// so that what they learn online can be measured against one trainer's
// (docs/trainer-scale.md#model-quality-with-replicas). The service splits
// the learning by user: a user's events go to one Kafka partition (the
// producers hash the user id), and the range assignment gives each replica
// a contiguous run of partitions. Each replica learns on a
// local copy of the shared model and, at each commit, adds local − base to
// it (the high level's part weighted by the replica's share of the shared
// model's updates since its base, counted here in events) and rebases;
// Replicated does the same with the same merge (mergeModel, built of
// commitReplica's mergeDense and mergeItem), every `every` events of the
// stream in place of every commit interval.

// OfflinePolicy is what Replicated needs of each replica: a policy of the
// offline comparisons (policy.New's) with the working model it learns on,
// which Learn changes in place and Replicated rebases at each merge, as a
// replica rebases its learner's; and the model it serves from, which
// Replicated sets to the shared model, as the service serves the published
// snapshot.
type OfflinePolicy interface {
	policy.Policy
	Model() *recommend.Model
	// ServeFrom makes Recommend decide with the given model, which does
	// not change while served.
	ServeFrom(*recommend.Model)
}

// ReplicaPartitions is how many partitions Replicated spreads users over
// (bench/replicas' six, a multiple of 1, 2 and 3).
const ReplicaPartitions = 6

// Replicated runs one policy as n partitioned replicas: each user's
// decisions are learned from by the replica that owns the user's partition,
// on that replica's local model, and served from the shared model as of the
// last commit, as the service serves the published snapshot. Commits are
// intervals of the stream, as the trainer's are intervals of time: every
// `every` events of the stream (an impression or a click, as the trainer
// counts messages; so about every/n events a replica) each replica that
// learned something since its last commit merges it into the shared model
// and rebases, in turn; one that learned nothing keeps its local model, as
// commitReplica does. The interval counts the stream, not a replica's
// share of it, because the service commits by time: at a given traffic n
// replicas commit as often as one trainer, each with 1/n of the events, and
// their shared model is served as many stream events late as one's. With n = 1 it is one partitioned replica: what the
// policy alone learns, served a commit interval late. Not safe for
// concurrent use, like the policies it wraps.
type Replicated struct {
	name  string
	every int
	reps  []*offlineReplica
	// shared is the shared model; cur the replica of the last Recommend,
	// which Learn attributes its decision to.
	shared *recommend.Model
	cur    *offlineReplica
	snap   *catalog.Snapshot // the last seen: the embeddings items start from
	// events counts the stream's events, merges the replicas' merges;
	// updates counts the events merged into the shared model (its meta's
	// Updates in the service).
	events, merges int
	updates        int
}

type offlineReplica struct {
	p    OfflinePolicy
	base *recommend.Model
	// learned counts the replica's events since its last merge;
	// baseUpdates is the shared model's updates as of base.
	learned, baseUpdates int
	// obs are the mode observations made since the last commit, which the
	// other replicas receive at it (a policy that is a modeSharer).
	obs []modeObservation
}

// modeSharer is an OfflinePolicy whose mode observations can be shared
// between replicas (policy.New's learning policies), as the trainer's
// replicas share theirs through the item log (modeshare.go).
type modeSharer interface {
	OnObserve(func(*recommend.LoggedSlate, []int))
	ObserveSlate(*recommend.LoggedSlate, []int)
}

// NewReplicated builds n replicas with newPolicy (each a fresh policy on the
// same starting model), named name, committing every `every` events of the
// stream.
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
		c := &offlineReplica{p: p, base: p.Model().Clone()}
		if ms, ok := p.(modeSharer); ok && n > 1 {
			ms.OnObserve(func(s *recommend.LoggedSlate, clicked []int) {
				c.obs = append(c.obs, observationOf(s, clicked))
			})
		}
		r.reps = append(r.reps, c)
	}
	r.shared = r.reps[0].p.Model().Clone()
	r.cur = r.reps[0]
	r.serve()
	return r, nil
}

// partitionNumbers lists the partitions' numbers, for the balancer.
var partitionNumbers = []int{0, 1, 2, 3, 4, 5}

// ReplicaOf is the replica of n that owns user's partition: the partition
// the producers' balancer (kafka.Hash, events.Producer) sends the user's
// events to, range-assigned over n replicas as novarec-range assigns.
func ReplicaOf(user string, n int) int {
	p := (&kafka.Hash{}).Balance(kafka.Message{Key: []byte(user)}, partitionNumbers...)
	return p * n / ReplicaPartitions
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
func (r *Replicated) ModelsIntent() bool { return policy.ModelsIntent(r.reps[0].p) }

// Recommend serves st's user from the shared model, through the replica
// that owns the user.
func (r *Replicated) Recommend(st *recommend.UserState, snap *catalog.Snapshot, k int, now int64, rng *rand.Rand) (recommend.Decision, error) {
	if st != nil {
		r.cur = r.reps[ReplicaOf(st.UserID, len(r.reps))]
	}
	return r.cur.p.Recommend(st, snap, k, now, rng)
}

// Learn feeds the decision back to the replica that made it, and commits
// at the end of each interval.
func (r *Replicated) Learn(snap *catalog.Snapshot, d *recommend.Decision, clicked []string, sessionEnded bool) {
	c := r.cur
	c.p.Learn(snap, d, clicked, sessionEnded)
	if snap != nil {
		r.snap = snap
	}
	n := 1 + len(clicked)
	c.learned += n
	before := r.events / r.every
	if r.events += n; r.events/r.every != before {
		r.commit()
	}
}

// Flush closes the replicas' held-back decisions and commits, as the
// replicas' final commits do.
func (r *Replicated) Flush() {
	for _, c := range r.reps {
		if f, ok := c.p.(policy.Flusher); ok {
			f.Flush()
		}
		c.learned++ // a closed decision is learned from
	}
	r.commit()
}

// commit is the end of a commit interval: each replica that learned merges,
// every replica adds the others' mode observations of the interval to its
// window, and the shared model is served.
func (r *Replicated) commit() {
	for _, c := range r.reps {
		if c.learned > 0 {
			r.merge(c)
			c.learned = 0
		}
	}
	for _, from := range r.reps {
		for _, to := range r.reps {
			if to == from {
				continue
			}
			for _, o := range from.obs {
				s, clicked := o.slate()
				to.p.(modeSharer).ObserveSlate(s, clicked)
			}
		}
	}
	for _, c := range r.reps {
		c.obs = c.obs[:0]
	}
	r.serve()
}

// serve makes every replica serve the shared model.
func (r *Replicated) serve() {
	for _, c := range r.reps {
		c.p.ServeFrom(r.shared)
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
	share := intentShare(int64(c.learned), int64(r.updates-c.baseUpdates))
	r.shared = mergeModel(r.shared, c.base, local, share, seed)
	rebaseModel(local, r.shared)
	c.base = local.Clone()
	r.updates += c.learned
	c.baseUpdates = r.updates
	r.merges++
}
