package events

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/novarec/novarec/internal/half"
)

// ImpressionSchema is the newest impression schema: 2, the compact form
// (docs/trainer-scale.md#impression-schema-2). An Impression whose Schema
// is 2 marshals to it; DecodeImpression reads both 1 and 2. Schema 1 spelt
// every number of the slate in decimal (2–3 KB at k=10); schema 2 carries
// what learning needs and no more, its numbers packed as base64 of
// little-endian binary: under 700 bytes at k=10. It leaves out what no
// learner or evaluator reads: the user and session propensities, the whole
// level distribution and the items' novel flags (decoded as zero values).
const ImpressionSchema = 2

// impressionV2 is schema 2 on the wire.
type impressionV2 struct {
	Schema  int    `json:"schema"`
	EventID string `json:"event_id"`
	// RequestID is absent when it equals EventID (as the service logs it).
	RequestID    string `json:"request_id,omitempty"`
	UserID       string `json:"user_id"`
	SessionID    string `json:"session_id,omitempty"`
	Variant      string `json:"variant,omitempty"`
	ModelVersion string `json:"model_version,omitempty"`
	TS           int64  `json:"ts"`
	Degraded     bool   `json:"degraded,omitempty"`
	// The high-level decision: level, its probability (float32) and the
	// state s_H (float16).
	Level int     `json:"level"`
	P     float32 `json:"p"`
	State string  `json:"state,omitempty"`
	// Taste is the user's taste vector: a float32 scale s, then one int8
	// q per component, the component being q·s/127 (a unit vector's
	// components lose under 0.5% of its largest one).
	Taste string `json:"taste,omitempty"`
	// Items are the shown item ids, Pos their positions when not 0..k-1.
	Items []string `json:"items"`
	Pos   []int    `json:"pos,omitempty"`
	// Slate holds per item its score and propensity (float32), novelty
	// (float16) and NPhi ranker features φ (float16).
	Slate string `json:"slate"`
	NPhi  int    `json:"nphi,omitempty"`
}

// MarshalJSON writes the impression in its Schema: 2 as impressionV2 (if
// its items carry different numbers of features, which schema 2 cannot
// say, it is written as schema 1), anything else as the plain struct.
func (im Impression) MarshalJSON() ([]byte, error) {
	if im.Schema != ImpressionSchema {
		return json.Marshal(impressionV1(im))
	}
	nphi := 0
	if len(im.Items) > 0 {
		nphi = len(im.Items[0].Features)
	}
	for _, it := range im.Items {
		if len(it.Features) != nphi {
			im.Schema = SchemaVersion
			return json.Marshal(impressionV1(im))
		}
	}
	w := impressionV2{
		Schema: ImpressionSchema, EventID: im.EventID, UserID: im.UserID, SessionID: im.SessionID,
		Variant: im.Variant, ModelVersion: im.ModelVersion, TS: im.TS, Degraded: im.Degraded,
		Level: im.Intent.Level, P: float32(im.Intent.Probability),
		State: b64.EncodeToString(append16(nil, im.Intent.State)), Taste: packTaste(im.Taste),
		Items: make([]string, len(im.Items)), NPhi: nphi,
	}
	if im.RequestID != im.EventID {
		w.RequestID = im.RequestID
	}
	slate := make([]byte, 0, (10+2*nphi)*len(im.Items))
	inOrder := true
	for i, it := range im.Items {
		w.Items[i] = it.ItemID
		inOrder = inOrder && it.Position == i
		slate = binary.LittleEndian.AppendUint32(slate, math.Float32bits(float32(it.Score)))
		slate = binary.LittleEndian.AppendUint32(slate, math.Float32bits(float32(it.Propensity)))
		slate = append16(slate, []float64{it.Novelty})
		slate = append16(slate, it.Features)
	}
	if !inOrder {
		w.Pos = make([]int, len(im.Items))
		for i, it := range im.Items {
			w.Pos[i] = it.Position
		}
	}
	w.Slate = b64.EncodeToString(slate)
	return json.Marshal(&w)
}

// UnmarshalJSON reads either schema, leniently as encoding/json does; use
// DecodeImpression to read events strictly and validated.
func (im *Impression) UnmarshalJSON(b []byte) error {
	if peekSchema(b) != ImpressionSchema {
		return json.Unmarshal(b, (*impressionV1)(im))
	}
	var w impressionV2
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	v, err := w.impression()
	if err != nil {
		return err
	}
	*im = v
	return nil
}

// impressionV1 is Impression without its methods: schema 1 on the wire.
type impressionV1 Impression

// peekSchema returns the "schema" of a JSON object (0 if it has none or is
// not one). Encoders write it first, which is the fast path.
func peekSchema(b []byte) int {
	t := bytes.TrimLeft(b, " \t\r\n")
	if v, ok := bytes.CutPrefix(t, []byte(`{"schema":`)); ok && len(v) > 1 && v[0] >= '0' && v[0] <= '9' && (v[1] == ',' || v[1] == '}') {
		return int(v[0] - '0')
	}
	var p struct {
		Schema int `json:"schema"`
	}
	_ = json.Unmarshal(b, &p) // a broken document is reported by the decode that follows
	return p.Schema
}

// impression unpacks w, naming the field at fault.
func (w *impressionV2) impression() (Impression, error) {
	bad := func(field, reason string) error {
		return &DecodeError{Event: "impression", Field: field, Reason: reason}
	}
	im := Impression{
		Schema: w.Schema, EventID: w.EventID, RequestID: w.RequestID, UserID: w.UserID, SessionID: w.SessionID,
		Variant: w.Variant, ModelVersion: w.ModelVersion, TS: w.TS, Degraded: w.Degraded,
		Intent: Intent{Level: w.Level, Probability: float64(w.P)},
	}
	if im.RequestID == "" {
		im.RequestID = im.EventID
	}
	state, err := unpack(w.State, 2)
	if err != nil {
		return Impression{}, bad("state", err.Error())
	}
	im.Intent.State = read16(state)
	if im.Taste, err = unpackTaste(w.Taste); err != nil {
		return Impression{}, bad("taste", err.Error())
	}
	k := len(w.Items)
	per := 10 + 2*w.NPhi
	slate, err := unpack(w.Slate, 1)
	switch {
	case err != nil:
		return Impression{}, bad("slate", err.Error())
	case w.NPhi < 0 || w.NPhi > 1000 || len(slate) != per*k:
		return Impression{}, bad("slate", fmt.Sprintf("must hold 10+2·nphi = %d bytes per item, has %d for %d items", per, len(slate), k))
	case w.Pos != nil && len(w.Pos) != k:
		return Impression{}, bad("pos", fmt.Sprintf("must hold 1 position per item, has %d for %d items", len(w.Pos), k))
	}
	im.Items = make([]ImpressionItem, k)
	// One backing array for every item's features (one allocation, not k).
	phi := make([]float64, k*w.NPhi)
	for i, id := range w.Items {
		it := &im.Items[i]
		it.ItemID, it.Position = id, i
		if w.Pos != nil {
			it.Position = w.Pos[i]
		}
		b := slate[i*per : (i+1)*per]
		it.Score = float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
		it.Propensity = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4:])))
		it.Novelty = float64(half.To32(binary.LittleEndian.Uint16(b[8:])))
		if w.NPhi > 0 {
			it.Features = phi[i*w.NPhi : (i+1)*w.NPhi : (i+1)*w.NPhi]
			for j := range it.Features {
				it.Features[j] = float64(half.To32(binary.LittleEndian.Uint16(b[10+2*j:])))
			}
		}
	}
	return im, nil
}

// decodeImpressionV2 is DecodeImpression for schema 2.
func decodeImpressionV2(b []byte) (Impression, error) {
	if w, ok := fastImpressionV2(b); ok {
		return w.impression()
	}
	var w impressionV2
	if err := decodeStrict("impression", b, &w); err != nil {
		return Impression{}, err
	}
	return w.impression()
}

var b64 = base64.RawStdEncoding

// append16 appends xs as float16 (round to nearest even; beyond ±65504
// they are clamped to it, so a huge value stays huge, not infinite).
func append16(b []byte, xs []float64) []byte {
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint16(b, half.From(float32(max(min(x, maxHalf), -maxHalf))))
	}
	return b
}

// read16 reads float16s (nil for none).
func read16(raw []byte) []float64 {
	if len(raw) == 0 {
		return nil
	}
	xs := make([]float64, len(raw)/2)
	for i := range xs {
		xs[i] = float64(half.To32(binary.LittleEndian.Uint16(raw[2*i:])))
	}
	return xs
}

// packTaste encodes a taste vector as a float32 scale and int8 components.
func packTaste(u []float32) string {
	if len(u) == 0 {
		return ""
	}
	scale := float32(0)
	for _, x := range u {
		scale = max(scale, float32(math.Abs(float64(x))))
	}
	raw := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(u)), math.Float32bits(scale))
	for _, x := range u {
		q := 0.0
		if scale > 0 {
			q = math.Round(float64(x / scale * 127))
		}
		if math.IsNaN(q) {
			q = 0 // a NaN scale: the NaN is in the scale, rejected on decode
		}
		raw = append(raw, byte(int8(q)))
	}
	return b64.EncodeToString(raw)
}

func unpackTaste(s string) ([]float32, error) {
	raw, err := unpack(s, 1)
	switch {
	case raw == nil:
		return nil, err
	case len(raw) < 4:
		return nil, fmt.Errorf("%d bytes, shorter than its scale", len(raw))
	}
	scale := math.Float32frombits(binary.LittleEndian.Uint32(raw))
	u := make([]float32, len(raw)-4)
	for i, q := range raw[4:] {
		u[i] = float32(int8(q)) * scale / 127
	}
	return u, nil
}

func unpack(s string, width int) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	raw, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not unpadded base64: %w", err)
	}
	if len(raw)%width != 0 {
		return nil, fmt.Errorf("%d bytes, not a whole number of %d-byte floats", len(raw), width)
	}
	return slices.Clip(raw), nil
}

const maxHalf = 65504
