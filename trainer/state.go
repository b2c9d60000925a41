package trainer

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/internal/half"
	"github.com/novarec/novarec/recommend"
)

// Incremental state (docs/trainer-scale.md). The whole Core used to be
// serialised into one checkpoint before every offset commit, so a commit
// cost as much as the attribution window held (35.8 MB after 60k events).
// Now the join state is stored as records, one per entry, in Redis hashes
// (features.Store.CommitState), and each commit writes the head (the
// learner, counters and watermarks: what does not grow with the window)
// plus the records that changed since the previous commit, deleting those
// that went away, in one transaction. A commit's cost is proportional to
// the events in its interval; a restart reads the head and the live
// records.
//
// Records are deleted by the same rules that drop entries from memory
// (event time, not a Redis TTL): a TTL runs on wall time, and a trainer
// catching up on a backlog must keep what its event time still needs.

// Hashes of the incremental state.
const (
	hashSlates  = "slates"  // request id → slate record
	hashWaiting = "waiting" // len(request id):request id event id → waiting feedback record
	hashSeen    = "seen"    // "i:"/"f:" event id → seen record
	hashUsers   = "users"   // user id → A/B aggregate record
	hashItems   = "items"   // item id → the model's learned bias and embedding
)

// StateHashes are the hashes RestoreState needs.
var StateHashes = []string{hashSlates, hashWaiting, hashSeen, hashUsers, hashItems}

// headMagic marks the head of the incremental state: a checkpoint whose
// join state (slates, waiting feedback, event ids, A/B users) is in records.
const headMagic = "NVTH"

// changeLog notes the records that changed since the last commit. A map
// of changed keys cost a hash insert per change, several per event — the
// largest single cost of handling one — so slates and users carry a noted
// flag and are listed once however often they change, and event ids are
// listed when remembered and when forgotten (at most once each per
// commit). The few waiting feedback events keep a set.
type changeLog struct {
	on bool
	// slates are the noted slates, including ones since dropped
	// (slate.gone).
	slates []*slate
	users  []userChange
	seen   []seenChange
	// seenPuts counts the entries of seen that remember an id.
	seenPuts int
	waiting  map[waitKey]struct{}
	// stored is the Core's seq at the last commit: an entry of the join
	// state numbered above it was never stored, so dropping it deletes no
	// record.
	stored int64
}

// userChange is a noted user's A/B counts.
type userChange struct {
	id string
	u  *expUser
}

// seenChange is an event id remembered or (forgot) forgotten.
type seenChange struct {
	id     string
	forgot bool
}

// waitKey names a waiting feedback record: its request and event ids.
type waitKey struct{ rid, id string }

// noteSlate notes that s changed (or was dropped: s.gone).
func (c *Core) noteSlate(s *slate) {
	if c.changes.on && !s.noted {
		s.noted = true
		c.changes.slates = append(c.changes.slates, s)
	}
}

// noteUser notes that user id's A/B counts u changed.
func (c *Core) noteUser(id string, u *expUser) {
	if c.changes.on && !u.noted {
		u.noted = true
		c.changes.users = append(c.changes.users, userChange{id, u})
	}
}

// noteSeen notes that event id key, numbered seq, was remembered or (forgot)
// forgotten. Forgetting an id remembered since the last commit deletes
// nothing: its record was never stored.
func (c *Core) noteSeen(key string, seq int64, forgot bool) {
	switch {
	case !c.changes.on || (forgot && seq > c.changes.stored):
	case forgot:
		c.changes.seen = append(c.changes.seen, seenChange{key, true})
	default:
		c.changes.seen = append(c.changes.seen, seenChange{key, false})
		c.changes.seenPuts++
	}
}

func (c *Core) touchWaiting(rid, eventID string) {
	if c.changes.on {
		c.changes.waiting[waitKey{rid: rid, id: eventID}] = struct{}{}
	}
}

// TrackChanges makes the Core note the records that change, for
// StateDelta, starting with every record it holds (so the first delta
// after a restore from a whole checkpoint writes them all: the one-time
// migration). Offline users of a Core do not call it and pay nothing.
func (c *Core) TrackChanges() {
	c.changes = changeLog{on: true, waiting: map[waitKey]struct{}{}}
	for _, s := range c.slates {
		s.noted = false
		c.noteSlate(s)
	}
	for rid, fbs := range c.waiting {
		for _, fb := range fbs {
			c.touchWaiting(rid, fb.ev.EventID)
		}
	}
	for id, v := range c.seen {
		c.noteSeen(id, v.seq, false)
	}
	for id, u := range c.exp.Users {
		u.noted = false
		c.noteUser(id, u)
	}
	c.itemSums, c.itemPending = map[string]uint64{}, nil
	c.itemDirty, c.itemScan = map[string]struct{}{}, true
}

// Changes reports how many records changed since the last StateDelta.
func (c *Core) Changes() int {
	ch := &c.changes
	return len(ch.slates) + len(ch.users) + len(ch.seen) + len(ch.waiting)
}

// StateDelta returns the commit that brings the stored state up to date:
// the head, and the records changed since the last Committed call. Call
// Committed once it is stored; until then the changes stay noted, so a
// failed commit is retried whole by the next one.
func (c *Core) StateDelta() (*features.StateDelta, error) {
	ch := &c.changes
	if !ch.on {
		return nil, errors.New("trainer: StateDelta without TrackChanges")
	}
	head, err := c.encodeHead()
	if err != nil {
		return nil, err
	}
	d := &features.StateDelta{Head: head, Put: map[string]map[string][]byte{}, Del: map[string][]string{}}
	// Each hash's map is made at its final size (growing a map of tens of
	// thousands of records rehashes it a dozen times).
	sizes := map[string]int{hashSlates: len(ch.slates), hashWaiting: len(ch.waiting), hashSeen: ch.seenPuts, hashUsers: len(ch.users)}
	put := func(hash, field string, v []byte) {
		if d.Put[hash] == nil {
			d.Put[hash] = make(map[string][]byte, sizes[hash])
		}
		d.Put[hash][field] = v
	}
	var a arena
	c.itemPending = c.itemPending[:0]
	if !c.sharedModel {
		c.itemsDelta(d, &a, put)
	}
	for _, s := range ch.slates {
		rid := s.ls.RequestID
		switch {
		case !s.gone:
			put(hashSlates, rid, a.record(appendSlate(a.begin(), s)))
		case s.seq > ch.stored:
			// Dropped before it was ever stored.
		case c.slates[rid] != nil:
			// Dropped, and its request id taken by a new slate, whose
			// record replaces it.
		default:
			d.Del[hashSlates] = append(d.Del[hashSlates], rid)
		}
	}
	for k := range ch.waiting {
		// The field only has to be unique (the record holds both ids).
		f := strconv.Itoa(len(k.rid)) + ":" + k.rid + k.id
		if fb := c.waitingFB(k.rid, k.id); fb != nil {
			put(hashWaiting, f, a.record(appendWaiting(a.begin(), fb)))
		} else {
			d.Del[hashWaiting] = append(d.Del[hashWaiting], f)
		}
	}
	for _, e := range ch.seen {
		// An id forgotten and remembered again is put; one remembered
		// and forgotten is deleted (if it was stored: noteSeen).
		switch v, ok := c.seen[e.id]; {
		case ok && !e.forgot:
			put(hashSeen, e.id, a.record(binary.AppendVarint(binary.AppendVarint(a.begin(), v.seq), v.ts)))
		case !ok && e.forgot:
			d.Del[hashSeen] = append(d.Del[hashSeen], e.id)
		}
	}
	for _, u := range ch.users {
		put(hashUsers, u.id, a.record(appendUser(a.begin(), u.u)))
	}
	return d, nil
}

// arena packs a delta's records into shared chunks: one allocation per
// chunk instead of a buffer grown from nothing per record, which was most
// of what building a commit cost.
type arena struct {
	buf   []byte
	start int
}

// arenaChunk is the size of a chunk; a record longer than what is left
// of one (a slate is about 600 bytes at k=10) moves to a copy, correct but
// slower.
const arenaChunk = 64 << 10

// begin returns the buffer to append the next record to.
func (a *arena) begin() []byte {
	if cap(a.buf)-len(a.buf) < 2048 {
		a.buf = make([]byte, 0, arenaChunk)
	}
	a.start = len(a.buf)
	return a.buf
}

// record takes the buffer begin returned with one record appended, and
// returns the record (its capacity clipped, so nothing appends over the
// next one).
func (a *arena) record(b []byte) []byte {
	a.buf = b
	return b[a.start:len(b):len(b)]
}

// itemsDelta adds the model's changed items to d: those the learner
// touched since the last commit, or, when it cannot say, every item whose
// fingerprint differs from the one committed.
func (c *Core) itemsDelta(d *features.StateDelta, a *arena, put func(hash, field string, v []byte)) {
	m := c.l.Model()
	if c.l.TakeTouched(c.itemDirty) {
		c.itemScan = true
	}
	visit := func(id string) {
		b, hasB := m.ItemBias[id]
		e, hasE := m.ItemEmb[id]
		if !hasB && !hasE {
			if _, ok := c.itemSums[id]; ok {
				d.Del[hashItems] = append(d.Del[hashItems], id)
				c.itemPending = append(c.itemPending, itemMark{id: id, gone: true})
			}
			return
		}
		sum := itemHash(b, hasB, e)
		if old, ok := c.itemSums[id]; ok && old == sum {
			return
		}
		put(hashItems, id, a.record(appendItem(a.begin(), b, hasB, e)))
		c.itemPending = append(c.itemPending, itemMark{id: id, sum: sum})
	}
	if !c.itemScan {
		for id := range c.itemDirty {
			visit(id)
		}
		return
	}
	for id := range m.ItemBias {
		visit(id)
	}
	for id := range m.ItemEmb {
		if _, ok := m.ItemBias[id]; !ok {
			visit(id)
		}
	}
	for id := range c.itemSums {
		_, b := m.ItemBias[id]
		_, e := m.ItemEmb[id]
		if !b && !e {
			visit(id)
		}
	}
}

// Committed records that the last StateDelta is stored.
func (c *Core) Committed() {
	ch := &c.changes
	for _, s := range ch.slates {
		s.noted = false
	}
	for _, u := range ch.users {
		u.u.noted = false
	}
	// Cleared, not only truncated: what was dropped can be collected.
	clear(ch.slates)
	clear(ch.users)
	clear(ch.seen)
	ch.slates, ch.users, ch.seen, ch.seenPuts = ch.slates[:0], ch.users[:0], ch.seen[:0], 0
	clear(ch.waiting)
	ch.stored = c.seq
	for _, it := range c.itemPending {
		if it.gone {
			delete(c.itemSums, it.id)
		} else {
			c.itemSums[it.id] = it.sum
		}
	}
	c.itemPending = c.itemPending[:0]
	clear(c.itemDirty)
	c.itemScan = false
}

// itemMark is a change of the model's items found by StateDelta, which
// compares the fingerprints of the items the learner touched since the last
// commit (Learner.TakeTouched) with the ones committed: CPU proportional to
// what the interval's events touched, bytes to what moved. Comparing every
// item (about 10 ms at 100k items) is left for the first commit and for a
// learner that dropped items wholesale.
type itemMark struct {
	id   string
	sum  uint64
	gone bool
}

// itemHash fingerprints an item's learned parameters: FNV-1a over their
// bits a 32-bit word at a time, not a byte (a quarter of the multiplies;
// at a commit every 200 events the byte-wise hash was 9% of the trainer's
// CPU). Each step (h ⊕ x)·p is a bijection of h for an odd p and of x for
// a given h, so a change in any one word always changes the sum: enough
// to find what moved since the last commit.
func itemHash(bias float32, hasBias bool, emb []float32) uint64 {
	h := uint64(14695981039346656037)
	mix := func(x uint32) {
		h ^= uint64(x)
		h *= 1099511628211
	}
	if hasBias {
		mix(1)
		mix(math.Float32bits(bias))
	}
	mix(uint32(len(emb)))
	for _, x := range emb {
		mix(math.Float32bits(x))
	}
	return h
}

func appendItem(b []byte, bias float32, hasBias bool, emb []float32) []byte {
	b = append(b, recordV1)
	if hasBias {
		b = append(b, 1)
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(bias))
	} else {
		b = append(b, 0)
	}
	return appendFloat32s(b, emb)
}

func appendFloat32s(b []byte, xs []float32) []byte {
	b = binary.AppendUvarint(b, uint64(len(xs)))
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func (r *reader) float32s() []float32 {
	n := r.count(4)
	if n == 0 {
		return nil
	}
	raw := r.take(4 * n)
	if r.err != nil {
		return nil
	}
	xs := make([]float32, n)
	for i := range xs {
		xs[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return xs
}

// restoreItems adds the items' records to m.
func restoreItems(m *recommend.Model, recs map[string]string) error {
	for id, v := range recs {
		p, err := readItem([]byte(v))
		if err != nil {
			return fmt.Errorf("%w: record %s[%q]: %w", ErrCheckpointCorrupt, hashItems, id, err)
		}
		setItem(m, id, p)
	}
	return nil
}

// readItem decodes an item record (appendItem).
func readItem(b []byte) (itemParams, error) {
	r := &reader{b: b}
	r.version(recordV1)
	flag := r.take(1)
	var p itemParams
	if r.err == nil && flag[0] == 1 {
		if bias := r.take(4); bias != nil {
			p.bias, p.hasBias = math.Float32frombits(binary.LittleEndian.Uint32(bias)), true
		}
	}
	p.emb = r.float32s()
	return p, r.done()
}

func (c *Core) waitingFB(rid, eventID string) *waitingFB {
	fbs := c.waiting[rid]
	for i := range fbs {
		if fbs[i].ev.EventID == eventID {
			return &fbs[i]
		}
	}
	return nil
}

// encodeHead is EncodeCheckpoint without the records, and without the
// model's items.
func (c *Core) encodeHead() ([]byte, error) {
	dense := *c.l.Model()
	dense.ItemBias, dense.ItemEmb = nil, nil
	model, err := recommend.EncodeModel(&dense, recommend.SnapshotMeta{Variant: c.cfg.Variant, Updates: c.Updates()})
	if err != nil {
		return nil, fmt.Errorf("trainer: checkpoint model: %w", err)
	}
	w := checkpointWire{
		Variant: c.cfg.Variant, Model: model, Updates: c.Updates(), Version: c.version,
		SincePublish: c.sincePublish, ImpressionWM: c.impWM, FeedbackWM: c.fbWM, LastSweep: c.lastSweep,
		Fresh: c.fresh, FreshSeen: c.freshSeen, Counters: c.counters,
		Experiment: expWire{Aggregates: c.exp.Aggregates},
		Seq:        max(c.seq, 1), // non-zero: the records carry their numbers
	}
	return sealWire(headMagic, &w)
}

// RestoreState rebuilds a Core from the incremental state (the head and
// the StateHashes), as DecodeCheckpoint does from a whole checkpoint, and
// tracks its changes from there. Errors are those of DecodeCheckpoint.
func RestoreState(cfg Config, img *features.StateImage, cat Snapshots) (*Core, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	w, err := readCheckpoint(headMagic, img.Head)
	if err != nil {
		return nil, err
	}
	corrupt := func(hash, field string, err error) error {
		return fmt.Errorf("%w: record %s[%q]: %w", ErrCheckpointCorrupt, hash, field, err)
	}
	for rid, v := range img.Hashes[hashSlates] {
		sw, err := readSlate(rid, []byte(v))
		if err != nil {
			return nil, corrupt(hashSlates, rid, err)
		}
		w.Slates = append(w.Slates, sw)
		if sw.Decision == decClosing {
			w.Closing = append(w.Closing, rid)
		}
	}
	slices.SortFunc(w.Slates, func(a, b slateWire) int { return cmp.Compare(a.Seq, b.Seq) })
	closeSeq := make(map[string]int64, len(w.Closing))
	for i := range w.Slates {
		closeSeq[w.Slates[i].Slate.RequestID] = w.Slates[i].CloseSeq
	}
	slices.SortFunc(w.Closing, func(a, b string) int { return cmp.Compare(closeSeq[a], closeSeq[b]) })

	type numbered[T any] struct {
		seq int64
		v   T
	}
	var waiting []numbered[events.Feedback]
	for f, v := range img.Hashes[hashWaiting] {
		seq, fb, err := readWaiting([]byte(v))
		if err != nil {
			return nil, corrupt(hashWaiting, f, err)
		}
		waiting = append(waiting, numbered[events.Feedback]{seq, fb})
	}
	slices.SortFunc(waiting, func(a, b numbered[events.Feedback]) int { return cmp.Compare(a.seq, b.seq) })
	for _, n := range waiting {
		w.Waiting = append(w.Waiting, n.v)
		w.WaitingSeq = append(w.WaitingSeq, n.seq)
	}

	var seen []numbered[seenRef]
	for id, v := range img.Hashes[hashSeen] {
		r := &reader{b: []byte(v)}
		seq, ts := r.varint(), r.varint()
		if r.err != nil {
			return nil, corrupt(hashSeen, id, r.err)
		}
		seen = append(seen, numbered[seenRef]{seq, seenRef{id: id, ts: ts}})
	}
	// Impressions' ids first, then feedback's, each in arrival order.
	slices.SortFunc(seen, func(a, b numbered[seenRef]) int {
		return cmp.Or(-cmp.Compare(a.v.id[0], b.v.id[0]), cmp.Compare(a.seq, b.seq)) // 'i' > 'f'
	})
	for _, n := range seen {
		if strings.HasPrefix(n.v.id, "i:") {
			w.SeenImps++
		}
		w.SeenIDs = append(w.SeenIDs, n.v.id)
		w.SeenTS = append(w.SeenTS, n.v.ts)
		w.SeenSeq = append(w.SeenSeq, n.seq)
	}

	for id, v := range img.Hashes[hashUsers] {
		u, err := readUser([]byte(v))
		if err != nil {
			return nil, corrupt(hashUsers, id, err)
		}
		w.Experiment.UserIDs = append(w.Experiment.UserIDs, id)
		w.Experiment.Users = append(w.Experiment.Users, u)
	}
	c, err := fromWire(cfg, w, cat, func(m *recommend.Model) error { return restoreItems(m, img.Hashes[hashItems]) })
	if err != nil {
		return nil, err
	}
	// What was restored is stored: nothing to write until it changes.
	c.changes = changeLog{on: true, waiting: map[waitKey]struct{}{}, stored: c.seq}
	m := c.l.Model()
	c.itemDirty = map[string]struct{}{}
	c.itemSums = make(map[string]uint64, max(len(m.ItemBias), len(m.ItemEmb)))
	for id, b := range m.ItemBias {
		c.itemSums[id] = itemHash(b, true, m.ItemEmb[id])
	}
	for id, e := range m.ItemEmb {
		if _, ok := m.ItemBias[id]; !ok {
			c.itemSums[id] = itemHash(0, false, e)
		}
	}
	return c, nil
}

// Record encodings: compact binary, versioned by their first byte. Floats
// are stored exactly, in the narrowest width that holds every value of a
// vector: 2 bytes when all are float16 numbers (the features of a schema-2
// impression), 4 for float32, else 8.
const recordV1 = 1

// slateV2 is the slate record that also holds each item's novel flag (a
// byte after its features), which a hedged slate's clicks are learned by.
// readSlate reads both; a build that reads only version 1 refuses it.
const slateV2 = 2

func appendSlate(b []byte, s *slate) []byte {
	b = append(b, slateV2)
	b = binary.AppendVarint(b, s.seq)
	b = binary.AppendVarint(b, s.closeSeq)
	ls := &s.ls
	b = appendString(b, ls.UserID)
	b = appendString(b, ls.SessionID)
	b = binary.AppendVarint(b, ls.TS)
	b = binary.AppendVarint(b, int64(ls.Level))
	b = appendFloats(b, []float64{ls.LevelProb})
	b = appendFloats(b, ls.State)
	b = appendFloat32s(b, ls.Taste)
	b = binary.AppendUvarint(b, uint64(len(ls.Items)))
	for i := range ls.Items {
		it := &ls.Items[i]
		b = appendString(b, it.ItemID)
		b = binary.AppendVarint(b, int64(it.Position))
		b = appendFloats(b, []float64{it.Propensity, it.Novelty, it.Score})
		b = appendFloats(b, it.Features[:])
		novel := byte(0)
		if it.Novel {
			novel = 1
		}
		b = append(b, novel)
	}
	flags := byte(0)
	if s.learn {
		flags = 1
	}
	b = append(b, flags, s.dec)
	b = binary.AppendUvarint(b, uint64(len(s.clicked)))
	for _, p := range s.clicked {
		b = binary.AppendVarint(b, int64(p))
	}
	b = binary.AppendVarint(b, s.last)
	b = appendFloats(b, s.nextState)
	b = binary.AppendVarint(b, s.nextTS)
	return b
}

func readSlate(rid string, b []byte) (slateWire, error) {
	r := &reader{b: b}
	v := r.version(slateV2)
	sw := slateWire{Seq: r.varint(), CloseSeq: r.varint()}
	ls := &sw.Slate
	ls.RequestID = rid
	ls.UserID, ls.SessionID, ls.TS = r.string(), r.string(), r.varint()
	ls.Level = int(r.varint())
	if p := r.floats(); len(p) == 1 {
		ls.LevelProb = p[0]
	} else {
		r.fail("level probability")
	}
	ls.State = r.floats()
	ls.Taste = r.float32s()
	ls.Items = make([]recommend.LoggedItem, r.count(3))
	for i := range ls.Items {
		it := &ls.Items[i]
		it.ItemID = r.string()
		it.Position = int(r.varint())
		if v := r.floats(); len(v) == 3 {
			it.Propensity, it.Novelty, it.Score = v[0], v[1], v[2]
		} else {
			r.fail("item numbers")
		}
		// Records of a build with fewer features have the missing ones 0,
		// as logged() pads them; one with more has its extra ones dropped.
		copy(it.Features[:], r.floats())
		if v >= slateV2 {
			if f := r.take(1); len(f) == 1 {
				it.Novel = f[0]&1 != 0
			}
		}
	}
	flags := r.take(2)
	if len(flags) == 2 {
		sw.Learn, sw.Decision = flags[0]&1 != 0, flags[1]
	}
	if n := r.count(1); n > 0 {
		sw.Clicked = make([]int, n)
		for i := range sw.Clicked {
			sw.Clicked[i] = int(r.varint())
		}
	}
	sw.Last = r.varint()
	sw.NextState = r.floats()
	sw.NextTS = r.varint()
	sw.Session = ls.UserID + "\x00" + ls.SessionID
	return sw, r.done()
}

func appendWaiting(b []byte, w *waitingFB) []byte {
	b = append(b, recordV1)
	b = binary.AppendVarint(b, w.seq)
	ev := &w.ev
	for _, s := range []string{ev.EventID, ev.RequestID, ev.UserID, ev.SessionID, ev.ItemID, ev.Type, ev.Variant} {
		b = appendString(b, s)
	}
	b = appendFloats(b, []float64{ev.Value})
	b = binary.AppendVarint(b, int64(ev.Schema))
	return binary.AppendVarint(b, ev.TS)
}

func readWaiting(b []byte) (int64, events.Feedback, error) {
	r := &reader{b: b}
	r.version(recordV1)
	seq := r.varint()
	ev := events.Feedback{EventID: r.string(), RequestID: r.string(), UserID: r.string(), SessionID: r.string(),
		ItemID: r.string(), Type: r.string(), Variant: r.string()}
	if v := r.floats(); len(v) == 1 {
		ev.Value = v[0]
	} else {
		r.fail("value")
	}
	ev.Schema = int(r.varint())
	ev.TS = r.varint()
	return seq, ev, r.done()
}

func appendUser(b []byte, u *expUser) []byte {
	b = append(b, recordV1)
	b = appendString(b, u.Session)
	for _, x := range []int64{u.Sessions, u.Last, u.Impressions, u.Clicked, u.Clicks, u.Novel} {
		b = binary.AppendVarint(b, x)
	}
	return appendFloats(b, []float64{u.Pre})
}

func readUser(b []byte) (expUser, error) {
	r := &reader{b: b}
	r.version(recordV1)
	u := expUser{Session: r.string()}
	for _, x := range []*int64{&u.Sessions, &u.Last, &u.Impressions, &u.Clicked, &u.Clicks, &u.Novel} {
		*x = r.varint()
	}
	if v := r.floats(); len(v) == 1 {
		u.Pre = v[0]
	} else {
		r.fail("pre")
	}
	return u, r.done()
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendFloats writes a length, a width (2, 4 or 8 bytes: the narrowest
// that holds every value exactly) and the values.
func appendFloats(b []byte, xs []float64) []byte {
	b = binary.AppendUvarint(b, uint64(len(xs)))
	if len(xs) == 0 {
		return b
	}
	width := byte(2)
	for _, x := range xs {
		switch {
		case float64(float32(x)) != x || math.IsNaN(x):
			width = 8
		case width == 2 && float64(half.To32(half.From(float32(x)))) != x:
			width = 4
		}
		if width == 8 {
			break
		}
	}
	b = append(b, width)
	for _, x := range xs {
		switch width {
		case 2:
			b = binary.LittleEndian.AppendUint16(b, half.From(float32(x)))
		case 4:
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(x)))
		default:
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		}
	}
	return b
}

// reader decodes records; the first error sticks and later reads return
// zero values, so decoders check once at the end.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("bad %s", what)
	}
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.fail("length")
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

// version reads a record's version, which must be from 1 to newest.
func (r *reader) version(newest byte) byte {
	v := r.take(1)
	if r.err != nil {
		return 0
	}
	if v[0] < recordV1 || v[0] > newest {
		r.err = fmt.Errorf("record version %d, this build reads %d to %d", v[0], recordV1, newest)
	}
	return v[0]
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return x
}

// count reads a length of elements at least min bytes each, checked
// against what is left so a damaged record cannot allocate much.
func (r *reader) count(minBytes int) int {
	if r.err != nil {
		return 0
	}
	x, n := binary.Uvarint(r.b)
	if n <= 0 || x > uint64(len(r.b)/minBytes) {
		r.fail("count")
		return 0
	}
	r.b = r.b[n:]
	return int(x)
}

func (r *reader) string() string { return string(r.take(r.count(1))) }

func (r *reader) floats() []float64 {
	n := r.count(1)
	if n == 0 || r.err != nil {
		return nil
	}
	w := r.take(1)
	if r.err != nil || (w[0] != 2 && w[0] != 4 && w[0] != 8) {
		r.fail("float width")
		return nil
	}
	raw := r.take(n * int(w[0]))
	if r.err != nil {
		return nil
	}
	xs := make([]float64, n)
	for i := range xs {
		switch w[0] {
		case 2:
			xs[i] = float64(half.To32(binary.LittleEndian.Uint16(raw[2*i:])))
		case 4:
			xs[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		default:
			xs[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	}
	return xs
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes left over", len(r.b))
	}
	return r.err
}
