package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/novarec/novarec/internal/jsonpath"
)

// Feedback types accepted on rec.feedback (DESIGN.md §5). They are constants
// so the API, the trainer and the decoder cannot drift apart on spelling.
const (
	FeedbackClick  = "click"
	FeedbackView   = "view"
	FeedbackSkip   = "skip"
	FeedbackRating = "rating"
)

// DecodeError says why a message body is not a valid event, naming the JSON
// field at fault so that a dead letter tells an operator exactly what to fix.
//
// A DecodeError matches ErrPoison under errors.Is: the same bytes fail the same
// way on every retry, so a consumer handler that returns a decode error as is
// sends the message to the dead-letter topic instead of retrying it forever
// and stalling its partition.
type DecodeError struct {
	// Event is the kind of event being decoded: "feedback" or "impression".
	Event string
	// Field is the JSON path of the offending field ("ts", "items[2].item_id",
	// "intent.probability"); empty when the body as a whole is at fault
	// (not JSON, truncated, trailing data).
	Field string
	// Reason is a short human-readable explanation.
	Reason string
	// Err is the underlying encoding/json error, if any.
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string {
	if e.Field == "" {
		return "events: invalid " + e.Event + ": " + e.Reason
	}
	return "events: invalid " + e.Event + ": field " + strconv.Quote(e.Field) + ": " + e.Reason
}

// Unwrap returns the underlying encoding/json error, if any.
func (e *DecodeError) Unwrap() error { return e.Err }

// Is reports that every DecodeError is a poison message (see ErrPoison).
func (e *DecodeError) Is(target error) bool { return target == ErrPoison }

// DecodeFeedback parses and validates one rec.feedback value strictly: exactly
// one JSON object, no unknown fields, schema 1, event_id, user_id and item_id
// present, type one of click|view|skip|rating, ts > 0 and every number finite.
// Strictness is deliberate: the learner must not silently train on events
// written by a producer that disagrees with this build about the schema.
// Errors are *DecodeError (and match ErrPoison). It never panics.
func DecodeFeedback(b []byte) (Feedback, error) {
	f, ok := fastFeedback(b)
	if !ok {
		// A variable of its own: one the fast path shares would be moved
		// to the heap (decodeStrict takes its address), an allocation per
		// event.
		var strict Feedback
		if err := decodeStrict("feedback", b, &strict); err != nil {
			return Feedback{}, err
		}
		f = strict
	}
	if err := validateFeedback(&f); err != nil {
		return Feedback{}, err
	}
	return f, nil
}

// DecodeImpression parses and validates one rec.impressions value strictly:
// exactly one JSON object, no unknown fields, schema 1 or 2
// (ImpressionSchema), event_id, request_id and user_id present, a non-empty
// items list whose items all have an item_id, and every number finite. See
// DecodeFeedback for why it is strict. Errors are *DecodeError (and match
// ErrPoison). It never panics.
func DecodeImpression(b []byte) (Impression, error) {
	var im Impression
	if peekSchema(b) == ImpressionSchema {
		var err error
		if im, err = decodeImpressionV2(b); err != nil {
			return Impression{}, err
		}
	} else {
		// A variable of its own, as in DecodeFeedback.
		var v1 Impression
		if err := decodeStrict("impression", b, (*impressionV1)(&v1)); err != nil {
			return Impression{}, err
		}
		im = v1
	}
	if err := validateImpression(&im); err != nil {
		return Impression{}, err
	}
	return im, nil
}

// decodeStrict decodes exactly one JSON value from b into v, rejecting unknown
// fields and anything but white space after the value.
//
// encoding/json matches field names case-insensitively, so "User_ID" is
// accepted as "user_id"; that is the one leniency left.
func decodeStrict(event string, b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(event, err)
	}
	if tok, err := dec.Token(); !errors.Is(err, io.EOF) {
		reason := "trailing data after the JSON object"
		if err == nil {
			reason += fmt.Sprintf(" (%v)", tok)
		}
		return &DecodeError{Event: event, Reason: reason, Err: err}
	}
	return nil
}

// jsonError turns an encoding/json error into a DecodeError naming the field.
func jsonError(event string, err error) error {
	de := &DecodeError{Event: event, Err: err}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		de.Reason = "empty body"
	case errors.Is(err, io.ErrUnexpectedEOF):
		de.Reason = "truncated JSON"
	case errors.As(err, &syn):
		de.Reason = fmt.Sprintf("not valid JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		de.Field = jsonpath.Field(typ.Field)
		if typ.Field == "" {
			de.Reason = fmt.Sprintf("expected a JSON object, got %s", typ.Value)
		} else {
			de.Reason = fmt.Sprintf("cannot use JSON %s as %s (out of range or wrong type)", typ.Value, typ.Type)
		}
	default:
		msg := err.Error()
		const marker = `unknown field "`
		if i := strings.Index(msg, marker); i >= 0 {
			name := msg[i+len(marker):]
			if j := strings.LastIndexByte(name, '"'); j >= 0 {
				name = name[:j]
			}
			de.Field = name
			de.Reason = "unknown field"
		} else {
			de.Reason = strings.TrimPrefix(msg, "json: ")
		}
	}
	return de
}

func validateFeedback(f *Feedback) error {
	bad := func(field, reason string) error {
		return &DecodeError{Event: "feedback", Field: field, Reason: reason}
	}
	switch {
	case f.Schema != SchemaVersion:
		return bad("schema", fmt.Sprintf("must be %d, got %d", SchemaVersion, f.Schema))
	case f.EventID == "":
		return bad("event_id", "required")
	case f.UserID == "":
		return bad("user_id", "required")
	case f.ItemID == "":
		return bad("item_id", "required")
	case f.Type == "":
		return bad("type", "required")
	}
	switch f.Type {
	case FeedbackClick, FeedbackView, FeedbackSkip, FeedbackRating:
	default:
		return bad("type", fmt.Sprintf("must be one of click|view|skip|rating, got %q", f.Type))
	}
	if f.TS <= 0 {
		return bad("ts", fmt.Sprintf("must be a positive Unix time in milliseconds, got %d", f.TS))
	}
	if !finite(f.Value) {
		return bad("value", "must be finite")
	}
	return nil
}

func validateImpression(im *Impression) error {
	bad := func(field, reason string) error {
		return &DecodeError{Event: "impression", Field: field, Reason: reason}
	}
	switch {
	case im.Schema != SchemaVersion && im.Schema != ImpressionSchema:
		return bad("schema", fmt.Sprintf("must be %d or %d, got %d", SchemaVersion, ImpressionSchema, im.Schema))
	case im.EventID == "":
		return bad("event_id", "required")
	case im.RequestID == "":
		return bad("request_id", "required")
	case im.UserID == "":
		return bad("user_id", "required")
	case len(im.Items) == 0:
		return bad("items", "must not be empty")
	}
	in := &im.Intent
	for _, x := range []struct {
		name string
		v    float64
	}{
		{"intent.user_propensity", in.UserPropensity},
		{"intent.session_propensity", in.SessionPropensity},
		{"intent.probability", in.Probability},
	} {
		if !finite(x.v) {
			return bad(x.name, "must be finite")
		}
	}
	for i, p := range in.Probabilities {
		if !finite(p) {
			return bad(fmt.Sprintf("intent.probabilities[%d]", i), "must be finite")
		}
	}
	for i, s := range in.State {
		if !finite(s) {
			return bad(fmt.Sprintf("intent.state[%d]", i), "must be finite")
		}
	}
	for i, x := range im.Taste {
		if !finite(float64(x)) {
			return bad(fmt.Sprintf("taste[%d]", i), "must be finite")
		}
	}
	for i := range im.Items {
		it := &im.Items[i]
		for j, x := range it.Features {
			if !finite(x) {
				return bad(fmt.Sprintf("items[%d].features[%d]", i, j), "must be finite")
			}
		}
		switch {
		case it.ItemID == "":
			return bad(fmt.Sprintf("items[%d].item_id", i), "required")
		case !finite(it.Score):
			return bad(fmt.Sprintf("items[%d].score", i), "must be finite")
		case !finite(it.Propensity):
			return bad(fmt.Sprintf("items[%d].propensity", i), "must be finite")
		case !finite(it.Novelty):
			return bad(fmt.Sprintf("items[%d].novelty", i), "must be finite")
		}
	}
	return nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
