package collab

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/internal/frame"
)

// Model is one fitted, immutable collaborative model: the catalog overlay
// (catalog.Learned) and the configuration it was fitted with.
type Model struct {
	catalog.Learned
	Config Config
	// basis is the spectral subspace by item id, the warm start of the
	// next embedding (not encoded: a decoded model refits from scratch);
	// embedded is the counts' Adds at the last embedding.
	basis    map[string][]float64
	embedded int64
}

// Embedded is the number of engagements counted when the embeddings were
// last fitted.
func (m *Model) Embedded() int64 { return m.embedded }

// Encoding of a model: length-prefixed little-endian sections in the
// envelope of internal/frame (magic, schema, length, CRC-32C), so a
// truncated, corrupted or incompatible model is rejected before it can
// replace a working one.
const (
	magic  = "NRCL"
	schema = 1
)

// ErrCorrupt is wrapped by Decode's errors for input that is not a model.
var ErrCorrupt = errors.New("collab: corrupt model")

// MarshalBinary encodes the model (little-endian, float32 values as IEEE
// bits).
func (m *Model) MarshalBinary() ([]byte, error) {
	cfg, err := json.Marshal(m.Config)
	if err != nil {
		return nil, err
	}
	l := &m.Learned
	size := 8 + 8 + 4 + len(cfg) + 4 + 4 + 4*(len(l.Count)+len(l.Emb)+len(l.Topic)+len(l.Centroids)+len(l.NbrStart)+len(l.Nbr)+len(l.NbrSim)) + 7*4 + 4
	for _, id := range l.IDs {
		size += 4 + len(id)
	}
	b := make([]byte, 0, size)
	b = binary.LittleEndian.AppendUint64(b, l.Version)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(l.Prior))
	b = appendBytes(b, cfg)
	b = binary.LittleEndian.AppendUint32(b, uint32(l.Dim))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(l.IDs)))
	for _, id := range l.IDs {
		b = appendBytes(b, []byte(id))
	}
	for _, s := range [][]float32{l.Count, l.Emb, l.Centroids} {
		b = appendFloats(b, s)
	}
	for _, s := range [][]int32{l.Topic, l.NbrStart, l.Nbr} {
		b = appendInts(b, s)
	}
	b = appendFloats(b, l.NbrSim)
	return frame.Seal(magic, schema, b), nil
}

// Checksum is the CRC-32C an encoded model ends with, its identity in logs.
func Checksum(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b[len(b)-4:])
}

func appendBytes(b, s []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendFloats(b []byte, s []float32) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	for _, x := range s {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func appendInts(b []byte, s []int32) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	for _, x := range s {
		b = binary.LittleEndian.AppendUint32(b, uint32(x))
	}
	return b
}

// Decode decodes and validates a model encoded by MarshalBinary.
func Decode(b []byte) (*Model, error) {
	payload, err := frame.Open(magic, schema, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	r := reader{b: payload}
	m := &Model{}
	l := &m.Learned
	l.Version = r.u64()
	l.Prior = math.Float64frombits(r.u64())
	if cfg := r.bytes(); r.err == nil {
		if err := json.Unmarshal(cfg, &m.Config); err != nil {
			return nil, fmt.Errorf("%w: config: %v", ErrCorrupt, err)
		}
	}
	l.Dim = int(r.u32())
	n := r.u32()
	if r.err == nil && int(n) > len(r.b)/4 {
		return nil, fmt.Errorf("%w: %d ids in %d bytes", ErrCorrupt, n, len(r.b))
	}
	l.IDs = make([]string, 0, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		l.IDs = append(l.IDs, string(r.bytes()))
	}
	l.Count, l.Emb, l.Centroids = r.floats(), r.floats(), r.floats()
	l.Topic, l.NbrStart, l.Nbr = r.ints(), r.ints(), r.ints()
	l.NbrSim = r.floats()
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, r.err)
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return m, nil
}

// reader decodes little-endian values, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = errors.New("truncated")
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *reader) u32() uint32 {
	if s := r.take(4); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if s := r.take(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

func (r *reader) bytes() []byte { return r.take(int(r.u32())) }

func (r *reader) words() []byte {
	n := r.u32()
	if r.err == nil && uint64(n)*4 > uint64(len(r.b)) {
		r.err = errors.New("truncated")
		return nil
	}
	return r.take(int(n) * 4)
}

func (r *reader) floats() []float32 {
	s := r.words()
	out := make([]float32, len(s)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(s[4*i:]))
	}
	return out
}

func (r *reader) ints() []int32 {
	s := r.words()
	out := make([]int32, len(s)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(s[4*i:]))
	}
	return out
}
