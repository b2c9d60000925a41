package trainer

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"slices"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/internal/frame"
	"github.com/novarec/novarec/recommend"
)

// Checkpoint wire format, like the model snapshot's: a gob payload in the
// envelope of internal/frame (magic "NVTC", schema, length, CRC-32C). The
// payload holds no maps (only slices in a
// defined order), so a state encodes to the same bytes every time, and a
// decoded checkpoint re-encodes to the bytes it was read from.
const (
	checkpointMagic = "NVTC"
	// CheckpointSchema is the checkpoint schema this build writes and
	// reads. Bump it when checkpointWire changes incompatibly.
	CheckpointSchema = 1
)

// Errors of DecodeCheckpoint, so callers can tell a damaged checkpoint from
// one written by another build.
var (
	ErrCheckpointCorrupt = errors.New("trainer: checkpoint corrupt")
	ErrCheckpointSchema  = errors.New("trainer: checkpoint schema not supported")
	// ErrCheckpointVariant: the checkpoint belongs to another variant's
	// trainer (a configuration mistake, never resolved by retrying).
	ErrCheckpointVariant = errors.New("trainer: checkpoint of another variant")
)

// checkpointWire is the whole Core state.
type checkpointWire struct {
	Variant string
	// Model is the learner's working model in the snapshot format
	// (recommend.EncodeModel), with its own checksum.
	Model        []byte
	Updates      int64
	Version      uint64
	SincePublish int64
	ImpressionWM int64
	FeedbackWM   int64
	LastSweep    int64
	// Slates in arrival order; the open decision of each session is the
	// slate whose Decision is decOpen.
	Slates []slateWire
	// Closing lists request ids of closing decisions in queue order.
	Closing []string
	// Waiting lists feedback waiting for its impression, in arrival order.
	Waiting []events.Feedback
	// SeenIDs and SeenTS are the remembered event ids, in arrival order:
	// first those of impressions, then those of feedback.
	SeenIDs   []string
	SeenTS    []int64
	SeenImps  int
	Fresh     []int64
	FreshSeen int64
	Counters  Counters
	// Experiment holds the A/B aggregates (absent in older checkpoints).
	Experiment expWire
	// Seq is the Core's entry counter; WaitingSeq and SeenSeq number
	// Waiting and SeenIDs (see slate.seq). All are absent in checkpoints
	// written before the join state became incremental, and then numbered
	// in order on restore.
	Seq        int64
	WaitingSeq []int64
	SeenSeq    []int64
}

type slateWire struct {
	Slate     recommend.LoggedSlate
	Session   string
	Learn     bool
	Clicked   []int
	Last      int64
	Decision  uint8
	NextState []float64
	NextTS    int64
	Seq       int64
	CloseSeq  int64
}

// EncodeCheckpoint serialises the whole state: the learner's model and
// update count, the impressions kept for attribution with their decisions,
// the feedback waiting for impressions, the remembered event ids, the
// watermarks, the snapshot counter and pending freshness sample, and the
// counters. Restoring it with DecodeCheckpoint and feeding both Cores the
// same events gives the same updates.
func (c *Core) EncodeCheckpoint() ([]byte, error) {
	model, err := recommend.EncodeModel(c.l.Model(), recommend.SnapshotMeta{Variant: c.cfg.Variant, Updates: c.Updates()})
	if err != nil {
		return nil, fmt.Errorf("trainer: checkpoint model: %w", err)
	}
	w := checkpointWire{
		Variant: c.cfg.Variant, Model: model, Updates: c.Updates(), Version: c.version,
		SincePublish: c.sincePublish, ImpressionWM: c.impWM, FeedbackWM: c.fbWM, LastSweep: c.lastSweep,
		Slates:     make([]slateWire, 0, c.slateQ.len()),
		Closing:    make([]string, 0, c.closing.len()),
		Waiting:    make([]events.Feedback, 0, c.nWaiting),
		SeenIDs:    make([]string, 0, len(c.seen)),
		SeenTS:     make([]int64, 0, len(c.seen)),
		SeenImps:   c.seenIQ.len(),
		Fresh:      c.fresh,
		FreshSeen:  c.freshSeen,
		Counters:   c.counters,
		Experiment: c.exp.wire(),
		Seq:        c.seq,
		WaitingSeq: make([]int64, 0, c.nWaiting),
		SeenSeq:    make([]int64, 0, len(c.seen)),
	}
	for _, rid := range c.slateQ.all() {
		s := c.slates[rid]
		w.Slates = append(w.Slates, slateWire{
			Slate: s.ls, Session: s.sess, Learn: s.learn, Clicked: s.clicked, Last: s.last,
			Decision: s.dec, NextState: s.nextState, NextTS: s.nextTS, Seq: s.seq, CloseSeq: s.closeSeq,
		})
	}
	for _, rid := range c.closing.all() {
		if s := c.slates[rid]; s != nil && s.dec == decClosing {
			w.Closing = append(w.Closing, rid)
		}
	}
	// Waiting feedback in arrival order; waitQ may hold references to
	// feedback already attributed, which are skipped.
	for _, ref := range c.waitQ.all() {
		for _, fb := range c.waiting[ref.rid] {
			if fb.ev.EventID == ref.eventID {
				w.Waiting = append(w.Waiting, fb.ev)
				w.WaitingSeq = append(w.WaitingSeq, fb.seq)
				break
			}
		}
	}
	for _, ref := range slices.Concat(c.seenIQ.all(), c.seenFQ.all()) {
		w.SeenIDs = append(w.SeenIDs, ref.id)
		w.SeenTS = append(w.SeenTS, ref.ts)
		w.SeenSeq = append(w.SeenSeq, c.seen[ref.id].seq)
	}
	return sealWire(checkpointMagic, &w)
}

func sealWire(magic string, w *checkpointWire) ([]byte, error) {
	var payload bytes.Buffer
	if err := gob.NewEncoder(&payload).Encode(w); err != nil {
		return nil, fmt.Errorf("trainer: encode checkpoint: %w", err)
	}
	return frame.Seal(magic, CheckpointSchema, payload.Bytes()), nil
}

// DecodeCheckpoint restores a Core from EncodeCheckpoint's bytes, with cfg's
// learner settings (so reward weights and rates may change across a
// restart) and cfg's bounds. It rejects a checkpoint that is truncated, fails
// its checksum (ErrCheckpointCorrupt), has another schema
// (ErrCheckpointSchema), or belongs to another variant (ErrCheckpointVariant).
func DecodeCheckpoint(cfg Config, data []byte, cat Snapshots) (*Core, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	w, err := readCheckpoint(checkpointMagic, data)
	if err != nil {
		return nil, err
	}
	return fromWire(cfg, w, cat, nil)
}

// fromWire builds a Core from a decoded checkpoint (whole, or a head with
// its records gathered by RestoreState, which adds the model's items with
// items).
func fromWire(cfg Config, w *checkpointWire, cat Snapshots, items func(*recommend.Model) error) (*Core, error) {
	if w.Variant != cfg.Variant {
		return nil, fmt.Errorf("%w: it is of variant %q, this trainer learns %q", ErrCheckpointVariant, w.Variant, cfg.Variant)
	}
	m, _, err := recommend.DecodeModel(w.Model)
	if err != nil {
		return nil, fmt.Errorf("%w: model: %w", ErrCheckpointCorrupt, err)
	}
	if items != nil {
		if err := items(m); err != nil {
			return nil, err
		}
	}
	c := newCore(cfg, recommend.NewLearner(cfg.Learner, m), cat)
	c.updBase, c.version, c.sincePublish = w.Updates, w.Version, w.SincePublish
	c.impWM, c.fbWM, c.lastSweep = w.ImpressionWM, w.FeedbackWM, w.LastSweep
	c.fresh, c.freshSeen, c.counters = w.Fresh, w.FreshSeen, w.Counters
	c.exp = w.Experiment.agg()
	// Checkpoints older than the sequence numbers are numbered in order.
	seq := func(s int64) int64 {
		if s == 0 || w.Seq == 0 {
			c.seq++
			return c.seq
		}
		return s
	}
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCheckpointCorrupt, fmt.Sprintf(format, args...))
	}
	for i := range w.Slates {
		sw := &w.Slates[i]
		rid := sw.Slate.RequestID
		if _, dup := c.slates[rid]; dup || rid == "" {
			return nil, corrupt("slate %d: request id %q missing or repeated", i, rid)
		}
		if sw.Decision > decClosed {
			return nil, corrupt("slate %s: decision state %d", rid, sw.Decision)
		}
		s := &slate{
			ls: sw.Slate, sess: sw.Session, learn: sw.Learn, clicked: sw.Clicked, last: sw.Last,
			dec: sw.Decision, nextState: sw.NextState, nextTS: sw.NextTS, seq: seq(sw.Seq), closeSeq: sw.CloseSeq,
		}
		c.slates[rid] = s
		c.slateQ.push(rid)
		if s.dec == decOpen {
			if prev, ok := c.open[s.sess]; ok {
				return nil, corrupt("session has two open decisions (%s, %s)", prev, rid)
			}
			c.open[s.sess] = rid
		}
	}
	for _, rid := range w.Closing {
		if s := c.slates[rid]; s == nil || s.dec != decClosing {
			return nil, corrupt("closing decision %s has no closing slate", rid)
		}
		s := c.slates[rid]
		s.closeSeq = seq(s.closeSeq)
		c.closing.push(rid, s.nextTS, s.closeSeq)
	}
	if w.Seq != 0 && (len(w.WaitingSeq) != len(w.Waiting) || len(w.SeenSeq) != len(w.SeenIDs)) {
		return nil, corrupt("%d waiting feedback with %d numbers, %d event ids with %d", len(w.Waiting), len(w.WaitingSeq), len(w.SeenIDs), len(w.SeenSeq))
	}
	for i, fb := range w.Waiting {
		c.wait(fb)
		if w.Seq != 0 {
			fbs := c.waiting[fb.RequestID]
			fbs[len(fbs)-1].seq = w.WaitingSeq[i]
		}
	}
	if len(w.SeenIDs) != len(w.SeenTS) || w.SeenImps < 0 || w.SeenImps > len(w.SeenIDs) {
		return nil, corrupt("%d event ids with %d times, %d of impressions", len(w.SeenIDs), len(w.SeenTS), w.SeenImps)
	}
	for i, id := range w.SeenIDs {
		q := &c.seenFQ
		if i < w.SeenImps {
			q = &c.seenIQ
		}
		if w.Seq != 0 {
			c.rememberAs(q, id, w.SeenTS[i], w.SeenSeq[i])
		} else {
			c.remember(q, id, w.SeenTS[i])
		}
	}
	if w.Seq != 0 {
		c.seq = w.Seq
	}
	return c, nil
}

// ReadCheckpointCounters returns the counters and watermark stored in a
// checkpoint, or in the head of the incremental state, without restoring
// it, for tools and tests that inspect one.
func ReadCheckpointCounters(data []byte) (Counters, int64, error) {
	magic := checkpointMagic
	if len(data) >= 4 && string(data[:4]) == headMagic {
		magic = headMagic
	}
	w, err := readCheckpoint(magic, data)
	if err != nil {
		return Counters{}, 0, err
	}
	return w.Counters, max(w.ImpressionWM, w.FeedbackWM), nil
}

func readCheckpoint(magic string, b []byte) (*checkpointWire, error) {
	payload, err := frame.Open(magic, CheckpointSchema, b)
	switch {
	case errors.Is(err, frame.ErrSchema):
		return nil, fmt.Errorf("%w: %w", ErrCheckpointSchema, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrCheckpointCorrupt, err)
	}
	var w checkpointWire
	if err := gob.NewDecoder(bytes.NewReader(payload)).Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpointCorrupt, err)
	}
	return &w, nil
}
