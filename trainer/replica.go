package trainer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/recommend"
)

// Scaling out (Config.Partitioned, docs/trainer-scale.md#scaling-out).
// Several replicas of a variant's trainer share its consumer group, and
// Kafka assigns each some partitions. Users are keyed to partitions (both
// topics are keyed by user id and have as many partitions), so every
// impression, its feedback and its session's decisions arrive at the
// replica that owns the user's partition: the join state splits by
// partition with nothing crossing. A replica holds one Core per partition
// it was assigned, stored as part pN of the variant's state (its own head:
// counters, watermarks, A/B sums; its own records), claimed with a new
// epoch when the replica receives the partition's first message and
// committed only while the epoch is still its own.
//
// The model is shared: the replica's Cores learn on one local copy, and a
// commit adds what the replica learned since it last read the shared model
// (local − base, the high level's part weighted by the replica's share of
// the updates since: merge.go) to the shared model as stored (mergeDense,
// mergeItem), in the same transaction as its partitions' records
// (features.Store CommitParts). An event is thus in the shared model exactly when its id is
// in the stored seen records of its partition. The committing replica then
// rebases its local copy on the result and publishes it as the variant's
// snapshot, numbered by the shared model's version, so recsvc still reads
// one model:VARIANT.
//
// A replica that loses a partition in a rebalance finds out at its next
// commit (the epoch moved: CommitParts refuses it, writing nothing), drops
// everything it had not committed and rejoins the group with its state
// reloaded; the events it dropped are delivered again, from the committed
// offsets, to the partitions' owners.

// modelPart is the shared part: the model's dense part as a snapshot
// (recommend.EncodeModel, whose meta counts the updates summed into it) and
// its items in hashItems.
const modelPart = "model"

func partName(p int) string { return "p" + strconv.Itoa(p) }

// CommittedCounters sums the counters the partitions 0..partitions-1 of a
// partitioned variant have committed (partitions not yet committed count
// zero): what the replicas together have durably handled, whichever of them
// holds each partition now. Benchmarks poll it to know when a stream is
// done (bench/replicas).
func CommittedCounters(ctx context.Context, store *features.Store, variant string, partitions int) (Counters, error) {
	var sum Counters
	for p := range partitions {
		img, err := store.LoadPart(ctx, CheckpointName(variant), partName(p))
		if errors.Is(err, features.ErrNotFound) {
			continue
		}
		if err != nil {
			return Counters{}, fmt.Errorf("trainer: partition %d: %w", p, err)
		}
		c, _, err := ReadCheckpointCounters(img.Head)
		if err != nil {
			return Counters{}, fmt.Errorf("trainer: partition %d: %w", p, err)
		}
		sum = sum.plus(c)
	}
	return sum, nil
}

// Handled is the number of events the counters account for, once each:
// impressions and feedback with a final outcome (duplicates are not
// counted, nor feedback still waiting for its impression).
func (a Counters) Handled() int64 {
	return a.Impressions + a.ImpressionsIgnored + a.Clicks + a.FeedbackUnattributed + a.FeedbackIgnored
}

// partHashes are a partition's hashes (the items are in the shared part).
var partHashes = []string{hashSlates, hashWaiting, hashSeen, hashUsers}

// part is a partition's Core and the epoch the replica claimed it with.
type part struct {
	core  *Core
	epoch int64
}

// replica is the state of a partitioned trainer.
type replica struct {
	l *recommend.Learner // the local model: base + what was learned since
	// base is the shared model as of the last rebase, baseUpdates
	// l.Updates() then, and updates and version the shared model's update
	// count and snapshot number then.
	base        *recommend.Model
	baseUpdates int64
	updates     int64
	version     uint64
	parts       map[int]*part
	// claim is the last publish claim this replica saw (read or made by
	// its commits: publish.go); unclaimed the version of its last merge
	// that claim does not hold (0: none); publishDue that it claimed a
	// snapshot it has not published (a failed publish is retried at the
	// next commit); noPublish turns publishing off (benchmarks of the
	// commit alone).
	claim      publishClaim
	unclaimed  uint64
	publishDue bool
	noPublish  bool
	// obs are the mode observations made since the last stored merge,
	// which the next merge logs for the other replicas (modeshare.go;
	// only when the learner fits the mode model).
	obs []modeObservation
	// dirty holds the items the learner touched since the last stored
	// commit (Learner.TakeTouched; a failed commit's stay), scan that
	// only comparing every item with base finds what changed since (the
	// learner dropped items wholesale).
	dirty map[string]struct{}
	scan  bool
}

// errPartLost is beforeCommit's veto when another replica claimed one of
// this replica's partitions: Run drops the uncommitted work and rejoins.
var errPartLost = errors.New("trainer: a partition was claimed by another replica")

func (r *replica) counters() Counters {
	var c Counters
	for _, p := range r.parts {
		c = c.plus(p.core.counters)
	}
	return c
}

func (r *replica) stats(st *Stats) {
	st.Counters = r.counters()
	for _, p := range r.parts {
		st.Watermark = max(st.Watermark, p.core.Watermark())
		s, w, d, i := p.core.Buffered()
		st.Slates, st.Waiting, st.Decisions, st.DedupIDs = st.Slates+s, st.Waiting+w, st.Decisions+d, st.DedupIDs+i
	}
	st.Updates = r.updates + r.l.Updates() - r.baseUpdates
	st.ModelVersion = r.version
}

// plus adds counters field by field.
func (a Counters) plus(b Counters) Counters {
	return Counters{
		Impressions: a.Impressions + b.Impressions, ImpressionDuplicates: a.ImpressionDuplicates + b.ImpressionDuplicates,
		ImpressionsIgnored: a.ImpressionsIgnored + b.ImpressionsIgnored, Clicks: a.Clicks + b.Clicks,
		FeedbackDuplicates: a.FeedbackDuplicates + b.FeedbackDuplicates, FeedbackUnattributed: a.FeedbackUnattributed + b.FeedbackUnattributed,
		FeedbackIgnored: a.FeedbackIgnored + b.FeedbackIgnored, Decisions: a.Decisions + b.Decisions,
		DecisionsSkipped: a.DecisionsSkipped + b.DecisionsSkipped, DedupEvicted: a.DedupEvicted + b.DedupEvicted,
	}
}

// runReplica is Run for a partitioned trainer: consume until ctx ends,
// starting over (state reloaded, group rejoined) whenever a partition was
// lost.
func (t *Trainer) runReplica(ctx context.Context) error {
	dl, closeDL := t.deadLetter()
	defer closeDL(ctx)
	for {
		rep, err := t.loadReplica(ctx)
		if err != nil || rep == nil {
			return err
		}
		t.mu.Lock()
		t.rep, t.lost = rep, false
		t.mu.Unlock()
		t.m.synced = Counters{}
		t.m.version.Set(float64(rep.version))
		t.lastPublish = time.Now()
		consumer, err := t.newConsumer(dl)
		if err != nil {
			return err
		}
		gctx, stop := context.WithCancel(ctx)
		t.runCtx, t.stop = gctx, stop
		t.log.Info("trainer replica consuming", "group", t.cfg.GroupID, "model_version", rep.version, "updates", rep.updates)
		runErr := consumer.Run(gctx, t.handle)
		if err := consumer.Close(); err != nil {
			t.log.Warn("trainer: consumer close", "err", err)
		}
		stop()
		st := t.Stats()
		t.log.Info("trainer replica stopped", "model_version", st.ModelVersion, "updates", st.Updates, "counters", st.Counters, "lost_partition", t.lost)
		switch {
		case t.fatal != nil:
			return t.fatal
		case t.lost && ctx.Err() == nil:
			continue
		case runErr != nil:
			return fmt.Errorf("trainer: %w", runErr)
		}
		return nil
	}
}

// loadReplica reads the shared model, retrying transient errors; nil, nil
// when ctx ends first.
func (t *Trainer) loadReplica(ctx context.Context) (*replica, error) {
	for attempt := 0; ; attempt++ {
		lctx, cancel := context.WithTimeout(ctx, t.cfg.CheckpointTimeout)
		r, err := t.readShared(lctx)
		cancel()
		switch {
		case err == nil:
			return r, nil
		case isCorrupt(err):
			return nil, fmt.Errorf("%w (refusing to start: to start this variant's learning over, delete the Redis keys <prefix>state:{%s}:*)", err, CheckpointName(t.cfg.Variant))
		}
		t.log.Warn("trainer: cannot load the shared model; retrying", "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(min(100*time.Millisecond<<min(attempt, 7), 10*time.Second)):
		}
	}
}

func isCorrupt(err error) bool {
	return errors.Is(err, ErrCheckpointCorrupt) || errors.Is(err, ErrCheckpointSchema) || errors.Is(err, ErrCheckpointVariant)
}

// readShared builds a replica on the shared model: as stored; else the
// model of the variant's single-owner state (switching a variant to
// replicas keeps what it learned, not its join state); else Deps.Start.
// Numbering continues after the last published snapshot.
func (t *Trainer) readShared(ctx context.Context) (*replica, error) {
	name := CheckpointName(t.cfg.Variant)
	var m *recommend.Model
	var updates int64
	img, err := t.deps.Store.LoadPart(ctx, name, modelPart, hashItems)
	switch {
	case err == nil:
		var meta recommend.SnapshotMeta
		if m, meta, err = recommend.DecodeModel(img.Head); err != nil {
			return nil, fmt.Errorf("%w: shared model: %w", ErrCheckpointCorrupt, err)
		}
		updates = meta.Updates
	case !errors.Is(err, features.ErrNotFound):
		return nil, err
	default:
		img, err = t.deps.Store.LoadState(ctx, name, hashItems)
		switch {
		case errors.Is(err, features.ErrNotFound):
			m = t.deps.Start
		case err != nil:
			return nil, err
		default:
			w, err := readCheckpoint(headMagic, img.Head)
			if err != nil {
				return nil, err
			}
			if m, _, err = recommend.DecodeModel(w.Model); err != nil {
				return nil, fmt.Errorf("%w: model: %w", ErrCheckpointCorrupt, err)
			}
			updates = w.Updates
			t.log.Info("trainer: starting the shared model from the single-owner state's", "updates", updates)
		}
	}
	if img != nil {
		if err := restoreItems(m, img.Hashes[hashItems]); err != nil {
			return nil, err
		}
	}
	version, _ := parseVersion(t.cfg.Variant, m.Version)
	if b, err := t.deps.Store.GetModel(ctx, t.cfg.Variant); err == nil {
		if pm, _, err := recommend.DecodeModel(b); err == nil {
			if n, ok := parseVersion(t.cfg.Variant, pm.Version); ok {
				version = max(version, n)
			}
		}
	} else if !errors.Is(err, features.ErrNotFound) {
		return nil, err
	}
	r := &replica{l: recommend.NewLearner(t.cfg.Learner, m), updates: updates, version: version, parts: map[int]*part{}, dirty: map[string]struct{}{}}
	r.base = r.l.Snapshot(m.Version)
	r.l.TakeTouched(r.dirty) // starts tracking: nothing changed yet
	return r, nil
}

// partCore returns partition p's Core, claiming and loading it on the
// partition's first message. Errors are retried by the consumer; a corrupt
// state stops Run.
func (t *Trainer) partCore(ctx context.Context, p int) (*Core, error) {
	if pt := t.rep.parts[p]; pt != nil {
		return pt.core, nil
	}
	name := CheckpointName(t.cfg.Variant)
	lctx, cancel := context.WithTimeout(ctx, t.cfg.CheckpointTimeout)
	defer cancel()
	epoch, err := t.deps.Store.ClaimPart(lctx, name, partName(p))
	if err != nil {
		return nil, err
	}
	var core *Core
	img, err := t.deps.Store.LoadPart(lctx, name, partName(p), partHashes...)
	switch {
	case err == nil:
		if core, err = RestoreState(t.cfg, img, t.deps.Catalog); err != nil {
			if isCorrupt(err) {
				t.fatal = fmt.Errorf("trainer: partition %d: %w (delete <prefix>state:{%s}:%s:* to start it over)", p, err, name, partName(p))
				t.stop()
			}
			return nil, err
		}
	case errors.Is(err, features.ErrNotFound):
		core = newCore(t.cfg, t.rep.l, t.deps.Catalog)
		core.TrackChanges()
	default:
		return nil, err
	}
	core.l, core.sharedModel = t.rep.l, true
	if t.cfg.Learner.ModeRefit > 0 {
		r := t.rep
		core.observed = func(s *recommend.LoggedSlate, clicked []int) {
			if len(r.obs) == maxLoggedObservations {
				r.obs = slices.Delete(r.obs, 0, 1)
			}
			r.obs = append(r.obs, observationOf(s, clicked))
		}
	}
	t.mu.Lock()
	t.rep.parts[p] = &part{core: core, epoch: epoch}
	t.mu.Unlock()
	t.m.synced = t.m.synced.plus(core.counters) // restored, not new
	t.log.Info("trainer: claimed partition", "partition", p, "epoch", epoch, "counters", core.counters)
	return core, nil
}

// assigned is the consumer's Assigned hook for a partitioned trainer: a new
// generation of the group gave this replica partitions. The consumer
// committed the last generation's work before the group rebalanced, so the
// partitions that went to other replicas are dropped with nothing lost and
// the others keep their Cores (no other replica held them in between: it
// would have needed a generation this one was not part of, and then the
// epoch check of the next commit finds out). If that commit failed, what
// was learned from a departing partition is in the local model and would
// be learned again by its new owner: the replica starts over (reloads the
// shared model, rejoins), as when a commit finds a partition lost.
func (t *Trainer) assigned(_ context.Context, partitions map[string][]int) {
	r := t.rep
	keep := map[int]bool{}
	for _, ps := range partitions {
		for _, p := range ps {
			keep[p] = true
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	dirty := r.l.Updates() != r.baseUpdates
	for _, pt := range r.parts {
		dirty = dirty || pt.core.Changes() > 0
	}
	for p := range r.parts {
		if keep[p] {
			continue
		}
		if dirty {
			t.log.Warn("trainer: a partition moved to another replica before its work was committed; starting over", "partition", p)
			t.lost = true
			t.stop()
			return
		}
		delete(r.parts, p)
		t.log.Info("trainer: partition moved to another replica", "partition", p)
	}
	t.m.synced = r.counters()
}

// commitReplica is beforeCommit for a partitioned trainer: commit the
// partitions' changes with the model's (merged into the shared model),
// rebase, publish.
func (t *Trainer) commitReplica(ctx context.Context) error {
	if t.lost || t.fatal != nil {
		return errPartLost
	}
	r := t.rep
	if len(r.parts) == 0 {
		return nil
	}
	start := time.Now()
	name := CheckpointName(t.cfg.Variant)
	parts := make([]features.PartDelta, 0, len(r.parts))
	records := 0
	t.mu.Lock()
	for p, pt := range r.parts {
		d, err := pt.core.StateDelta()
		if err != nil {
			t.mu.Unlock()
			return err
		}
		records += pt.core.Changes()
		parts = append(parts, features.PartDelta{Part: partName(p), Epoch: pt.epoch, Delta: d})
	}
	t.mu.Unlock()
	local := r.l.Model()
	learned := r.l.Updates() - r.baseUpdates
	if r.l.TakeTouched(r.dirty) {
		r.scan = true
	}
	var changed []string
	if r.scan {
		changed = changedItems(r.base, local)
	} else {
		changed = changedAmong(r.base, local, r.dirty)
	}

	// The merge's results, from its last (successful) call: the dense
	// part and this replica's items as merged, and the items the other
	// replicas changed since its base as stored (theirs; whole says the
	// log could not list them); whether it claimed the next snapshot
	// (publish.go) and the last claim it saw; idle, that it found nothing
	// to write (an idle replica's empty claim, made unneeded by another's).
	var (
		dense   *recommend.Model
		items   map[string]itemParams
		theirs  map[string]itemParams
		whole   bool
		n       uint64
		total   int64
		claim   publishClaim
		claimed bool
		idle    bool
		written *features.StateDelta // the shared part's writes
		// obs are this replica's mode observations the merge logs,
		// theirObs the other replicas' it read.
		obs      []modeObservation
		theirObs []modeObservation
	)
	t.mu.Lock()
	obs = r.obs
	t.mu.Unlock()
	now := time.Now()
	gap := t.publishGap()
	final := t.runCtx != nil && t.runCtx.Err() != nil
	merges := learned != 0 || len(changed) != 0
	merge := func(head []byte, get features.SharedFields) (*features.StateDelta, error) {
		global, updates, version := r.base, r.updates, r.version
		if head != nil {
			g, meta, err := recommend.DecodeModel(head)
			if err != nil {
				return nil, fmt.Errorf("%w: shared model: %w", ErrCheckpointCorrupt, err)
			}
			global, updates = g, meta.Updates
			version, _ = parseVersion(t.cfg.Variant, g.Version)
		}
		var err error
		if claim, err = lastClaim(get); err != nil {
			return nil, err
		}
		claimed = !r.noPublish && claimDue(claim, version, merges, now, gap, final)
		if idle = !merges && !claimed && head != nil; idle {
			written = &features.StateDelta{Head: head} // the shared model as it is
			return written, nil
		}
		n, total = max(version, r.version)+1, updates+learned
		theirObs = nil
		dense = mergeDense(global, r.base, local, intentShare(learned, updates-r.updates))
		dense.Version = VersionName(t.cfg.Variant, n)
		enc, err := recommend.EncodeModel(dense, recommend.SnapshotMeta{Variant: t.cfg.Variant, Updates: total})
		if err != nil {
			return nil, fmt.Errorf("trainer: shared model: %w", err)
		}
		d := &features.StateDelta{Head: enc, Put: map[string]map[string][]byte{}}
		written = d
		if claimed {
			claim = publishClaim{version: n, atMS: now.UnixMilli()}
			d.Put[hashPublish] = map[string][]byte{fieldLastClaim: appendPublishClaim(nil, claim)}
		}
		entry := itemLogEntry{version: n, prev: version, ids: changed, obs: obs}
		if len(changed) > maxLoggedItems {
			entry.all, entry.ids = true, nil
		}
		d.Put[hashItemLog] = map[string][]byte{itemLogSlot(n): appendItemLog(nil, entry)}
		// The other replicas' items since base, read in this transaction
		// with this replica's own.
		read := changed
		whole = false
		if version != r.version || updates != r.updates {
			ids, others, ok, err := changedSince(get, r.version, version)
			if err != nil {
				return nil, err
			}
			whole, theirObs = !ok, others
			mine := make(map[string]struct{}, len(changed))
			for _, id := range changed {
				mine[id] = struct{}{}
			}
			read = slices.Clip(read)
			for _, id := range ids {
				if _, ok := mine[id]; !ok {
					read = append(read, id)
				}
			}
		}
		items = make(map[string]itemParams, len(changed))
		theirs = make(map[string]itemParams, len(read)-len(changed))
		if len(read) == 0 {
			return d, nil
		}
		vals, err := get(hashItems, read...)
		if err != nil {
			return nil, err
		}
		for i, id := range read[len(changed):] {
			if v := vals[len(changed)+i]; v != nil {
				it, err := readItem(v)
				if err != nil {
					return nil, fmt.Errorf("%w: shared model item %q: %w", ErrCheckpointCorrupt, id, err)
				}
				theirs[id] = it
			}
		}
		if len(changed) == 0 {
			return d, nil
		}
		d.Put[hashItems] = make(map[string][]byte, len(changed))
		snap := t.deps.Catalog.Current()
		var a arena
		for i, id := range changed {
			var g itemParams
			if vals[i] != nil {
				if g, err = readItem(vals[i]); err != nil {
					return nil, fmt.Errorf("%w: shared model item %q: %w", ErrCheckpointCorrupt, id, err)
				}
			}
			b, l := itemOf(r.base, id), itemOf(local, id)
			// mergeItem reads the catalog's embedding only for an item
			// the base or the shared model has none for: looked up only
			// then, as a lookup in a map of the whole catalog cost 2% of a
			// replica's CPU at 100,000 items.
			var seed []float32
			if snap != nil && l.emb != nil && (b.emb == nil || g.emb == nil) {
				if j, ok := snap.Index(id); ok {
					seed = snap.Embedding(j)
				}
			}
			it := mergeItem(g, b, l, seed)
			items[id] = it
			d.Put[hashItems][id] = a.record(appendItem(a.begin(), it.bias, it.hasBias, it.emb))
		}
		return d, nil
	}
	// With nothing learned only the partitions' records are written (and
	// the epochs checked), unless this replica's last merge is still
	// unpublished and a claim could be due (then the merge claims, with
	// nothing to merge, or finds a claim since that holds it).
	if !merges && (r.unclaimed <= r.claim.version || now.Sub(time.UnixMilli(r.claim.atMS)) < gap && !final) {
		merge = nil
	}
	cctx, cancel := context.WithTimeout(ctx, t.cfg.CheckpointTimeout)
	defer cancel()
	err := t.deps.Store.CommitParts(cctx, name, parts, modelPart, merge)
	if errors.Is(err, features.ErrStateOwner) {
		t.log.Warn("trainer: another replica claimed one of this replica's partitions; dropping what is not committed and rejoining", "err", err)
		t.lost = true
		t.stop()
		return errPartLost
	}
	if err != nil {
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}
	scanned := r.scan
	clear(r.dirty)
	r.scan = false
	t.mu.Lock()
	aggs := make(map[string]features.PartAggregates, len(r.parts))
	for p, pt := range r.parts {
		pt.core.Committed()
		aggs[partName(p)] = features.PartAggregates{Epoch: pt.epoch, Aggregates: pt.core.Aggregates()}
	}
	t.mu.Unlock()
	// The A/B aggregates follow the commit that holds them, as a single
	// owner's do: each partition's users are its own (partitions are keyed
	// by user), so the variant's aggregates are the sum of its partitions'.
	if err := t.deps.Store.PutPartAggregates(cctx, t.cfg.Experiment, t.cfg.Variant, aggs); err != nil {
		t.log.Warn("trainer: storing A/B aggregates failed; retried at the next commit", "err", err)
	}
	size := 0
	for _, p := range parts {
		size += p.Delta.Bytes()
	}
	if merge != nil {
		size += written.Bytes()
	}
	t.checkpoints.Add(1)
	t.ckptBytes.Store(int64(size))
	t.ckptTotal.Add(int64(size))
	t.ckptRecords.Store(int64(records))
	t.m.ckptSecs.Observe(time.Since(start).Seconds())
	t.m.ckptBytes.Set(float64(size))
	if merge != nil {
		r.claim = claim
		r.publishDue = r.publishDue || claimed
		if !idle {
			t.rebase(cctx, dense, items, theirs, whole || scanned, total, n)
			if merges && !claimed {
				r.unclaimed = n
			}
			t.observeTheirs(obs, theirObs)
		}
		if r.unclaimed <= r.claim.version {
			r.unclaimed = 0
		}
	}
	if r.publishDue {
		t.publishShared(ctx)
	}
	return nil
}

// rebase makes the local model (and its base) the shared model as just
// committed: the merged dense part, this replica's items as merged, and
// the items other replicas changed since the last rebase as stored (which
// brings their updates in, so the snapshot published from the local model
// holds them). Either way local − base is zero afterwards, so the next
// commit adds only what is learned from now on. Only those items are
// copied, so a rebase costs what the interval changed, not the model's
// size. whole asks for the rebase as it was before the item log: read
// every stored item when the log could not list the other replicas'
// (reading them is for freshness, and is skipped if it fails) and copy
// the whole local model into the base — also after a commit that had to
// compare every item (the learner dropped items wholesale, which the base
// must follow).
func (t *Trainer) rebase(ctx context.Context, dense *recommend.Model, items, theirs map[string]itemParams, whole bool, updates int64, version uint64) {
	r := t.rep
	var stored map[string]string
	if whole {
		if img, err := t.deps.Store.LoadPart(ctx, CheckpointName(t.cfg.Variant), modelPart, hashItems); err != nil {
			t.log.Warn("trainer: reading the shared model's items failed; learning on the local ones", "err", err)
		} else {
			stored = img.Hashes[hashItems]
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := r.l.Model()
	m.Version, m.Intent, m.Ranker = dense.Version, dense.Intent, dense.Ranker
	r.baseUpdates, r.updates, r.version = r.l.Updates(), updates, version
	if whole {
		for id, it := range items {
			setItem(m, id, it)
		}
		if err := restoreItems(m, stored); err != nil {
			t.log.Warn("trainer: the shared model's items do not decode; learning on the local ones", "err", err)
		}
		r.base = r.l.Snapshot(m.Version)
		return
	}
	b := r.base
	b.Version, b.Intent, b.Ranker = dense.Version, dense.Intent.Clone(), dense.Ranker
	for _, set := range []map[string]itemParams{items, theirs} {
		for id, it := range set {
			// The learner moves the local embeddings in place: the base
			// keeps a copy of its own.
			setItem(m, id, it)
			it.emb = slices.Clone(it.emb)
			setItem(b, id, it)
		}
	}
}

// observeTheirs follows a stored merge that logged this replica's mode
// observations mine: the ones made since are kept for the next merge, and
// the other replicas' observations theirs, read from their merges' log
// entries, join this replica's mode window (modeshare.go).
func (t *Trainer) observeTheirs(mine, theirs []modeObservation) {
	r := t.rep
	t.mu.Lock()
	defer t.mu.Unlock()
	r.obs = slices.Delete(r.obs, 0, min(len(mine), len(r.obs)))
	for _, o := range theirs {
		s, clicked := o.slate()
		r.l.ObserveSlate(s, clicked)
	}
}

// publishShared publishes the local model, just rebased on the shared model
// of version r.version, as the variant's snapshot. A failure is logged and
// retried by the next commit.
func (t *Trainer) publishShared(ctx context.Context) {
	r := t.rep
	now := time.Now()
	var fresh []int64
	for _, p := range r.parts {
		fresh = append(fresh, p.core.fresh...)
	}
	if len(fresh) > t.cfg.FreshnessSample {
		fresh = fresh[:t.cfg.FreshnessSample]
	}
	data, err := recommend.EncodeModel(r.l.Model(), recommend.SnapshotMeta{Variant: t.cfg.Variant, CreatedMS: now.UnixMilli(), Updates: r.updates, FeedbackTS: fresh})
	if err != nil {
		t.log.Error("trainer: snapshot does not encode; not published", "version", r.version, "err", err)
		return
	}
	// Not cancelled with Run: the commit it follows is stored, and its
	// model should be served.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := t.deps.Store.PutModel(pctx, t.cfg.Variant, data); err != nil {
		t.log.Warn("trainer: publishing snapshot failed; retried at the next commit", "version", r.version, "err", err)
		return
	}
	r.publishDue = false
	t.mu.Lock()
	for _, p := range r.parts {
		p.core.Published(r.version)
	}
	t.mu.Unlock()
	t.lastPublish, t.publishTook = now, time.Since(now)
	t.publishes.Add(1)
	t.snapBytes.Store(int64(len(data)))
	t.snapTotal.Add(int64(len(data)))
	t.m.version.Set(float64(r.version))
	t.m.snapBytes.Set(float64(len(data)))
	t.m.publishSecs.Observe(time.Since(now).Seconds())
}
