package events

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/novarec/novarec/internal/half"
	"github.com/novarec/novarec/internal/plainjson"
)

// ImpressionSchema is the newest impression schema: 2, the compact form
// (docs/trainer-scale.md#impression-schema-2). An Impression whose Schema
// is 2 marshals to it; DecodeImpression reads both 1 and 2. Schema 1 spelt
// every number of the slate in decimal (2–3 KB at k=10); schema 2 carries
// what learning needs and no more, its numbers packed as base64 of
// little-endian binary: under 700 bytes at k=10. It leaves out what no
// learner or evaluator reads: the user and session propensities, the whole
// level distribution. An item's novel flag is the sign bit of its
// novelty (which is never negative): the learner needs it, as a hedged
// slate's click is compared only with items of its intent, and it costs
// no byte. Events written before it decode with no novel items.
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
	// (float16, its sign bit set for a novel item) and NPhi ranker
	// features φ (float16).
	Slate string `json:"slate"`
	NPhi  int    `json:"nphi,omitempty"`
	// packed holds the base64 of State, Taste and Slate, in this order,
	// as the scanner found them in the message (fastImpressionV2; the
	// strings are then empty): impression decodes them from there, which
	// spares a string each. Nil for a field encoding/json read.
	packed [3][]byte
}

// packedField is field i of packed, or s (the field as encoding/json
// read it) when the scanner did not.
func (w *impressionV2) packedField(i int, s string) []byte {
	if w.packed[i] != nil {
		return w.packed[i]
	}
	return []byte(s)
}

// MarshalJSON writes the impression in its Schema: 2 as impressionV2 (if
// its items carry different numbers of features, which schema 2 cannot
// say, it is written as schema 1), anything else as the plain struct.
// Schema 2 is written by hand (appendV2), byte for byte as encoding/json
// writes impressionV2 (TestAppendJSONMatchesEncodingJSON).
func (im Impression) MarshalJSON() ([]byte, error) {
	if im.Schema != ImpressionSchema {
		return json.Marshal(impressionV1(im))
	}
	if !sameFeatureCount(im.Items) {
		im.Schema = SchemaVersion
		return json.Marshal(impressionV1(im))
	}
	if b, ok := im.appendV2(nil); ok {
		return b, nil
	}
	return json.Marshal(im.wireV2()) // a non-finite probability: encoding/json's error
}

// AppendJSON appends the bytes json.Marshal(im) returns to b. For a
// schema-2 impression (what the service logs) it spends no reflection and
// no allocation beyond b's growth: the service encodes one per request.
func (im *Impression) AppendJSON(b []byte) ([]byte, error) {
	if im.Schema == ImpressionSchema && sameFeatureCount(im.Items) {
		if out, ok := im.appendV2(b); ok {
			return out, nil
		}
	}
	v := *im // a copy, so that only this rare path puts an impression on the heap
	j, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

// sameFeatureCount reports whether every item has as many features as the
// first, which schema 2 needs.
func sameFeatureCount(items []ImpressionItem) bool {
	for _, it := range items {
		if len(it.Features) != len(items[0].Features) {
			return false
		}
	}
	return true
}

// wireV2 is im as impressionV2: what appendV2 writes without building it.
func (im *Impression) wireV2() *impressionV2 {
	nphi := 0
	if len(im.Items) > 0 {
		nphi = len(im.Items[0].Features)
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
		slate = appendSlateItem(slate, &it)
	}
	if !inOrder {
		w.Pos = make([]int, len(im.Items))
		for i, it := range im.Items {
			w.Pos[i] = it.Position
		}
	}
	w.Slate = b64.EncodeToString(slate)
	return &w
}

// appendSlateItem appends one item's part of the slate: score and
// propensity as float32, novelty and features as float16, the novelty's
// sign bit flagging a novel item.
func appendSlateItem(b []byte, it *ImpressionItem) []byte {
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(it.Score)))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(it.Propensity)))
	nov := half.From(float32(min(math.Abs(it.Novelty), maxHalf)))
	if it.Novel {
		nov |= novelBit
	}
	b = binary.LittleEndian.AppendUint16(b, nov)
	return append16(b, it.Features)
}

// novelBit is the sign bit of a float16, set on a novel item's novelty.
const novelBit = 0x8000

// appendV2 appends json.Marshal(im.wireV2()) to b, field by field in
// impressionV2's order and with its omitempty rules. The items must have
// the same number of features; ok is false (and b is returned unchanged)
// if the probability is not finite as a float32, which encoding/json
// refuses.
func (im *Impression) appendV2(b []byte) (_ []byte, ok bool) {
	p := float32(im.Intent.Probability)
	if math.IsNaN(float64(p)) || math.IsInf(float64(p), 0) {
		return b, false
	}
	var scratch [512]byte // the packed state, taste or slate before base64
	b = append(b, `{"schema":`...)
	b = strconv.AppendInt(b, ImpressionSchema, 10)
	b = append(b, `,"event_id":`...)
	b = plainjson.AppendString(b, im.EventID)
	if im.RequestID != im.EventID && im.RequestID != "" {
		b = append(b, `,"request_id":`...)
		b = plainjson.AppendString(b, im.RequestID)
	}
	b = append(b, `,"user_id":`...)
	b = plainjson.AppendString(b, im.UserID)
	if im.SessionID != "" {
		b = append(b, `,"session_id":`...)
		b = plainjson.AppendString(b, im.SessionID)
	}
	if im.Variant != "" {
		b = append(b, `,"variant":`...)
		b = plainjson.AppendString(b, im.Variant)
	}
	if im.ModelVersion != "" {
		b = append(b, `,"model_version":`...)
		b = plainjson.AppendString(b, im.ModelVersion)
	}
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, im.TS, 10)
	if im.Degraded {
		b = append(b, `,"degraded":true`...)
	}
	b = append(b, `,"level":`...)
	b = strconv.AppendInt(b, int64(im.Intent.Level), 10)
	b = append(b, `,"p":`...)
	b = appendFloat32(b, p)
	if raw := append16(scratch[:0], im.Intent.State); len(raw) > 0 {
		b = append(b, `,"state":"`...)
		b = b64.AppendEncode(b, raw)
		b = append(b, '"')
	}
	if raw := appendTaste(scratch[:0], im.Taste); len(raw) > 0 {
		b = append(b, `,"taste":"`...)
		b = b64.AppendEncode(b, raw)
		b = append(b, '"')
	}
	b = append(b, `,"items":[`...)
	inOrder := true
	for i := range im.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = plainjson.AppendString(b, im.Items[i].ItemID)
		inOrder = inOrder && im.Items[i].Position == i
	}
	b = append(b, ']')
	if !inOrder {
		b = append(b, `,"pos":[`...)
		for i := range im.Items {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(im.Items[i].Position), 10)
		}
		b = append(b, ']')
	}
	slate := scratch[:0]
	for i := range im.Items {
		slate = appendSlateItem(slate, &im.Items[i])
	}
	b = append(b, `,"slate":"`...)
	b = b64.AppendEncode(b, slate)
	b = append(b, '"')
	if len(im.Items) > 0 && len(im.Items[0].Features) > 0 {
		b = append(b, `,"nphi":`...)
		b = strconv.AppendInt(b, int64(len(im.Items[0].Features)), 10)
	}
	return append(b, '}'), true
}

// appendFloat32 appends a finite f as encoding/json writes a float32:
// shortest decimal that reads back as f, exponent form below 1e-6 and
// from 1e21 on, with "e-07" shortened to "e-7".
func appendFloat32(b []byte, f float32) []byte {
	format := byte('f')
	if abs := float32(math.Abs(float64(f))); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, float64(f), format, -1, 32)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
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
	// The packed fields are decoded into scratch, which each is read out
	// of before the next: at k=10 the slate is 180 bytes.
	var scratch [1024]byte
	state, err := unpack(scratch[:0], w.packedField(0, w.State), 2)
	if err != nil {
		return Impression{}, bad("state", err.Error())
	}
	im.Intent.State = read16(state)
	if im.Taste, err = unpackTaste(scratch[:0], w.packedField(1, w.Taste)); err != nil {
		return Impression{}, bad("taste", err.Error())
	}
	k := len(w.Items)
	per := 10 + 2*w.NPhi
	slate, err := unpack(scratch[:0], w.packedField(2, w.Slate), 1)
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
		nov := binary.LittleEndian.Uint16(b[8:])
		it.Novelty, it.Novel = float64(half.To32(nov&^novelBit)), nov&novelBit != 0
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

// packTaste encodes a taste vector as a float32 scale and int8 components,
// in base64 ("" for none).
func packTaste(u []float32) string {
	if len(u) == 0 {
		return ""
	}
	return b64.EncodeToString(appendTaste(make([]byte, 0, 4+len(u)), u))
}

// appendTaste appends packTaste's bytes before base64 (nothing for none).
func appendTaste(raw []byte, u []float32) []byte {
	if len(u) == 0 {
		return raw
	}
	scale := float32(0)
	for _, x := range u {
		scale = max(scale, float32(math.Abs(float64(x))))
	}
	raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(scale))
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
	return raw
}

// unpackTaste reads a packed taste vector (base64 text s), decoding it
// into scratch.
func unpackTaste(scratch, s []byte) ([]float32, error) {
	raw, err := unpack(scratch, s, 1)
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

// unpack decodes base64 text s of floats width bytes wide, appending to
// dst (which the caller reads the floats out of: nil for none).
func unpack(dst, s []byte, width int) ([]byte, error) {
	if len(s) == 0 {
		return nil, nil
	}
	n := b64.DecodedLen(len(s))
	dst = slices.Grow(dst, n)
	raw := dst[len(dst) : len(dst)+n]
	m, err := b64.Decode(raw, s)
	if err != nil {
		return nil, fmt.Errorf("not unpadded base64: %w", err)
	}
	raw = raw[:m]
	if len(raw)%width != 0 {
		return nil, fmt.Errorf("%d bytes, not a whole number of %d-byte floats", len(raw), width)
	}
	return raw, nil
}

const maxHalf = 65504
