package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/novarec/novarec/internal/plainjson"
)

// The recommend response is written on every request, and encoding/json
// spends most of its time there on reflection: appendResponse writes the
// same bytes (TestAppendResponseMatchesEncodingJSON) by hand into a pooled
// buffer. Anything it cannot write exactly as encoding/json would (a
// non-finite float, which encoding/json refuses) falls back to c.JSON.

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// writeRecommendResponse writes resp as c.JSON(http.StatusOK, resp) would.
func writeRecommendResponse(c *gin.Context, resp *RecommendResponse) {
	bp := bufPool.Get().(*[]byte)
	b, ok := appendResponse((*bp)[:0], resp)
	if !ok {
		bufPool.Put(bp)
		c.JSON(http.StatusOK, *resp) // a copy: only this rare path puts a response on the heap
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", b)
	if cap(b) <= 64<<10 {
		*bp = b
		bufPool.Put(bp)
	}
}

// appendResponse appends r's JSON encoding; ok is false if a float is not
// finite.
func appendResponse(b []byte, r *RecommendResponse) (_ []byte, ok bool) {
	ok = true
	b = append(b, `{"request_id":`...)
	b = plainjson.AppendString(b, r.RequestID)
	b = append(b, `,"user_id":`...)
	b = plainjson.AppendString(b, r.UserID)
	if r.SessionID != "" {
		b = append(b, `,"session_id":`...)
		b = plainjson.AppendString(b, r.SessionID)
	}
	b = append(b, `,"variant":`...)
	b = plainjson.AppendString(b, r.Variant)
	b = append(b, `,"model_version":`...)
	b = plainjson.AppendString(b, r.ModelVersion)
	b = append(b, `,"catalog_version":`...)
	b = strconv.AppendUint(b, r.CatalogVersion, 10)
	b = append(b, `,"intent":{"user_propensity":`...)
	b = appendFloat(b, r.Intent.UserPropensity, &ok)
	b = append(b, `,"session_propensity":`...)
	b = appendFloat(b, r.Intent.SessionPropensity, &ok)
	b = append(b, `,"level":`...)
	b = strconv.AppendInt(b, int64(r.Intent.Level), 10)
	b = append(b, `,"probability":`...)
	b = appendFloat(b, r.Intent.Probability, &ok)
	b = append(b, `},"items":`...)
	if r.Items == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Items {
			it := &r.Items[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"item_id":`...)
			b = plainjson.AppendString(b, it.ItemID)
			b = append(b, `,"score":`...)
			b = appendFloat(b, it.Score, &ok)
			b = append(b, `,"propensity":`...)
			b = appendFloat(b, it.Propensity, &ok)
			b = append(b, `,"novel":`...)
			b = strconv.AppendBool(b, it.Novel)
			b = append(b, `,"position":`...)
			b = strconv.AppendInt(b, int64(it.Position), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if r.Degraded {
		b = append(b, `,"degraded":true`...)
	}
	return append(b, '}'), ok
}

// appendFloat appends f as encoding/json writes a float64; a NaN or an
// infinity clears ok.
func appendFloat(b []byte, f float64, ok *bool) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		*ok = false
		return b
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
