package api

import "github.com/novarec/novarec/internal/plainjson"

// Every POST /v1/recommend body is decoded, and encoding/json's reflective
// Decoder (with a second pass for trailing data) was 2–3% of recsvc's CPU.
// Nearly every body is a flat object of a few plain fields, such as
// {"user_id":"u1","session_id":"s1","k":10}: fastRecommendRequest reads
// those directly. It accepts only what it is sure encoding/json would read
// to the same value: anything else (exclude, context, an escape or a
// non-ASCII byte in a string, null, a duplicate, unknown or differently
// cased key, a number that is not a plain integer) makes it give up, and
// decode reads the body and names the field at fault as before
// (internal/plainjson).
// FuzzFastRecommendRequest checks the two agree on every input it accepts.

// recommendKeys are the fields fastRecommendRequest reads, in the order of
// its switch.
var recommendKeys = []string{"user_id", "session_id", "k", "deterministic"}

// fastRecommendRequest decodes body into r if it is a plain request; ok is
// false (and r untouched) otherwise.
func fastRecommendRequest(body []byte, r *RecommendRequest) (ok bool) {
	var (
		out RecommendRequest
		k   int64
	)
	s := plainjson.NewScanner(body)
	if !s.Object(recommendKeys, func(key int) bool {
		var ok bool
		switch key {
		case 0:
			out.UserID, ok = s.Str()
		case 1:
			out.SessionID, ok = s.Str()
		case 2:
			if k, ok = s.Int(); ok && k == int64(int(k)) {
				n := int(k)
				out.K = &n
			} else {
				ok = false // beyond an int: encoding/json says so
			}
		case 3:
			out.Deterministic, ok = s.Bool()
		}
		return ok
	}) {
		return false
	}
	*r = out
	return true
}
