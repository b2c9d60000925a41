package recommend

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"

	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/ranker"
)

// Snapshot wire format: a fixed header, a gob payload and a checksum.
//
//	magic "NVRM" | schema uint16 | reserved uint16 | payload length uint64 | payload | CRC-32C(payload) uint32
//
// Integers are big-endian. A reader rejects another magic, a schema it does
// not know, a length that does not match, or a checksum that does not, so a
// truncated or corrupted snapshot can never replace a serving model.
const (
	snapshotMagic  = "NVRM"
	SnapshotSchema = 1
	headerLen      = 4 + 2 + 2 + 8
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
	Theta   [ranker.NumFeatures]float64
	Tau     float64
	BiasIDs []string
	Bias    []float32
	EmbIDs  []string
	EmbDim  int
	// Emb packs the embeddings of EmbIDs as little-endian float32.
	Emb []byte
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// EncodeModel serialises a model snapshot. Map entries are written in id
// order so equal models encode to equal bytes.
func EncodeModel(m *Model, meta SnapshotMeta) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	w := modelWire{Meta: meta, Version: m.Version, Intent: *m.Intent, Theta: m.Ranker.Theta, Tau: m.Ranker.Temperature}
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
	out := make([]byte, 0, headerLen+payload.Len()+4)
	out = append(out, snapshotMagic...)
	out = binary.BigEndian.AppendUint16(out, SnapshotSchema)
	out = binary.BigEndian.AppendUint16(out, 0)
	out = binary.BigEndian.AppendUint64(out, uint64(payload.Len()))
	out = append(out, payload.Bytes()...)
	out = binary.BigEndian.AppendUint32(out, crc32.Checksum(payload.Bytes(), crcTable))
	return out, nil
}

// DecodeModel parses and validates a snapshot written by EncodeModel.
func DecodeModel(b []byte) (*Model, SnapshotMeta, error) {
	var meta SnapshotMeta
	if len(b) < headerLen+4 || string(b[:4]) != snapshotMagic {
		return nil, meta, fmt.Errorf("%w: bad header", ErrSnapshotCorrupt)
	}
	if v := binary.BigEndian.Uint16(b[4:6]); v != SnapshotSchema {
		return nil, meta, fmt.Errorf("%w: schema %d, this build reads %d", ErrSnapshotSchema, v, SnapshotSchema)
	}
	n := binary.BigEndian.Uint64(b[8:16])
	if n != uint64(len(b)-headerLen-4) {
		return nil, meta, fmt.Errorf("%w: payload length %d, have %d bytes", ErrSnapshotCorrupt, n, len(b)-headerLen-4)
	}
	payload := b[headerLen : len(b)-4]
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, meta, fmt.Errorf("%w: checksum mismatch", ErrSnapshotCorrupt)
	}
	var w modelWire
	if err := gob.NewDecoder(bytes.NewReader(payload)).Decode(&w); err != nil {
		return nil, meta, fmt.Errorf("%w: %v", ErrSnapshotCorrupt, err)
	}
	if len(w.Bias) != len(w.BiasIDs) || len(w.Emb) != len(w.EmbIDs)*w.EmbDim*4 {
		return nil, meta, fmt.Errorf("%w: item tables do not match their ids", ErrSnapshotCorrupt)
	}
	pol := w.Intent
	m := &Model{Version: w.Version, Intent: &pol, Ranker: ranker.Params{Theta: w.Theta, Temperature: w.Tau}}
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
