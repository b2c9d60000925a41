package recommend

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/internal/frame"
	"github.com/novarec/novarec/ranker"
)

// Snapshot wire format: a gob payload in the envelope of internal/frame
// (magic "NVRM", schema, length, CRC-32C), so a truncated, corrupted or
// incompatible snapshot can never replace a serving model.
const (
	snapshotMagic  = "NVRM"
	SnapshotSchema = 1
)

// Errors of DecodeModel, for callers that count rejections by cause.
var (
	ErrSnapshotCorrupt = errors.New("recommend: snapshot corrupt")
	ErrSnapshotSchema  = errors.New("recommend: snapshot schema not supported")
)

// SnapshotMeta travels with a model snapshot for observability.
type SnapshotMeta struct {
	Variant string
	// CreatedMS is when the trainer encoded the snapshot (Unix ms).
	CreatedMS int64
	// Updates is the learner's update count at snapshot time.
	Updates int64
	// FeedbackTS holds the event times (Unix ms) of feedback first included
	// in this snapshot (a bounded sample), so the server can measure
	// freshness: time from feedback to the first response using it.
	FeedbackTS []int64
}

type modelWire struct {
	Meta    SnapshotMeta
	Version string
	Intent  intent.Policy
	// Theta holds θ of the three features schema 1 began with; ThetaAll
	// holds every feature's (absent in older snapshots, whose later
	// features take DefaultParams' weights).
	Theta    [3]float64
	ThetaAll []float64
	Tau      float64
	BiasIDs  []string
	Bias     []float32
	EmbIDs   []string
	EmbDim   int
	// Emb packs the embeddings of EmbIDs as little-endian float32.
	Emb []byte
}

// EncodeModel serialises a model snapshot. Map entries are written in id
// order so equal models encode to equal bytes.
func EncodeModel(m *Model, meta SnapshotMeta) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	w := modelWire{Meta: meta, Version: m.Version, Intent: *m.Intent, ThetaAll: m.Ranker.Theta[:], Tau: m.Ranker.Temperature}
	copy(w.Theta[:], m.Ranker.Theta[:])
	w.BiasIDs = sortedKeys(m.ItemBias)
	w.Bias = make([]float32, len(w.BiasIDs))
	for i, id := range w.BiasIDs {
		w.Bias[i] = m.ItemBias[id]
	}
	w.EmbIDs = sortedKeys(m.ItemEmb)
	for _, id := range w.EmbIDs {
		e := m.ItemEmb[id]
		if w.EmbDim == 0 {
			w.EmbDim = len(e)
			w.Emb = make([]byte, 0, len(w.EmbIDs)*w.EmbDim*4)
		}
		if len(e) != w.EmbDim {
			return nil, fmt.Errorf("recommend: embedding of %s has %d dimensions, want %d", id, len(e), w.EmbDim)
		}
		for _, x := range e {
			w.Emb = binary.LittleEndian.AppendUint32(w.Emb, math.Float32bits(x))
		}
	}
	var payload bytes.Buffer
	if err := gob.NewEncoder(&payload).Encode(&w); err != nil {
		return nil, fmt.Errorf("recommend: encode snapshot: %w", err)
	}
	return frame.Seal(snapshotMagic, SnapshotSchema, payload.Bytes()), nil
}

// DecodeModel parses and validates a snapshot written by EncodeModel.
func DecodeModel(b []byte) (*Model, SnapshotMeta, error) {
	var meta SnapshotMeta
	payload, err := frame.Open(snapshotMagic, SnapshotSchema, b)
	switch {
	case errors.Is(err, frame.ErrSchema):
		return nil, meta, fmt.Errorf("%w: %w", ErrSnapshotSchema, err)
	case err != nil:
		return nil, meta, fmt.Errorf("%w: %w", ErrSnapshotCorrupt, err)
	}
	var w modelWire
	if err := gob.NewDecoder(bytes.NewReader(payload)).Decode(&w); err != nil {
		return nil, meta, fmt.Errorf("%w: %v", ErrSnapshotCorrupt, err)
	}
	if len(w.Bias) != len(w.BiasIDs) || len(w.Emb) != len(w.EmbIDs)*w.EmbDim*4 {
		return nil, meta, fmt.Errorf("%w: item tables do not match their ids", ErrSnapshotCorrupt)
	}
	pol := w.Intent
	if len(w.ThetaAll) > ranker.NumFeatures {
		return nil, meta, fmt.Errorf("%w: %d ranker weights, this build knows %d features", ErrSnapshotCorrupt, len(w.ThetaAll), ranker.NumFeatures)
	}
	m := &Model{Version: w.Version, Intent: &pol, Ranker: ranker.Params{Theta: ranker.DefaultParams().Theta, Temperature: w.Tau}}
	copy(m.Ranker.Theta[:], w.Theta[:])
	copy(m.Ranker.Theta[:], w.ThetaAll)
	if len(w.BiasIDs) > 0 {
		m.ItemBias = make(map[string]float32, len(w.BiasIDs))
		for i, id := range w.BiasIDs {
			m.ItemBias[id] = w.Bias[i]
		}
	}
	if len(w.EmbIDs) > 0 {
		m.ItemEmb = make(map[string][]float32, len(w.EmbIDs))
		flat := make([]float32, len(w.EmbIDs)*w.EmbDim)
		for i := range flat {
			flat[i] = math.Float32frombits(binary.LittleEndian.Uint32(w.Emb[4*i:]))
		}
		for i, id := range w.EmbIDs {
			m.ItemEmb[id] = flat[i*w.EmbDim : (i+1)*w.EmbDim : (i+1)*w.EmbDim]
		}
	}
	if err := m.Validate(); err != nil {
		return nil, meta, fmt.Errorf("%w: %v", ErrSnapshotCorrupt, err)
	}
	return m, w.Meta, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
