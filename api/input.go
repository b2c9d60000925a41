package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/novarec/novarec/internal/jsonpath"
)

// Body limits. PUT /v1/items has its own so that its documented maximum,
// MaxItemsPerRequest items with embeddings (about 5 MB at 32 dimensions),
// fits with room for long ids and many categories.
const (
	MaxBodyBytes      = 1 << 20
	MaxItemsBodyBytes = 32 << 20
	// DefaultBodyTimeout is how long a client may take to send a body
	// (Config.BodyTimeout), plus one second per minBodyRate bytes it
	// announced: a recommend or feedback body is a few hundred bytes.
	DefaultBodyTimeout = 10 * time.Second
	minBodyRate        = 1 << 20
)

// bodyKey is where readBody leaves the body in the gin context.
const bodyKey = "novarec.body"

// requireJSON answers 415 unless the request says its body is JSON
// (application/json or a +json type, UTF-8 if a charset is given): a body
// sent as a form or as text is a client bug better reported than guessed.
func requireJSON(c *gin.Context) {
	mt, params, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			c.Next()
			return
		}
	}
	abort(c, http.StatusUnsupportedMediaType, Error{Code: "unsupported_media_type",
		Message: "Content-Type must be application/json", Field: "Content-Type"})
}

// readBody reads the whole request body, at most limit bytes, before the
// handler (and, on the data plane, before the in-flight bound) sees the
// request, within Config.BodyTimeout plus the announced length at
// minBodyRate. A client that trickles its body or stops half-way is cut
// off with 408 and its connection closed, and it never holds an in-flight
// slot while it dawdles: slots are for requests the server can work on.
func (s *Server) readBody(limit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		r := c.Request
		timeout := s.cfg.BodyTimeout
		if r.ContentLength > 0 {
			timeout += time.Duration(r.ContentLength) * time.Second / minBodyRate
		}
		rc := http.NewResponseController(c.Writer)
		// Not supported by httptest recorders, which have no connection.
		_ = rc.SetReadDeadline(time.Now().Add(timeout))
		var buf bytes.Buffer
		if r.ContentLength > 0 && r.ContentLength <= limit {
			buf.Grow(int(r.ContentLength))
		}
		s.metrics.readingBodies.Inc()
		_, err := buf.ReadFrom(http.MaxBytesReader(c.Writer, r.Body, limit))
		s.metrics.readingBodies.Dec()
		_ = rc.SetReadDeadline(time.Time{})
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			abort(c, http.StatusRequestEntityTooLarge, Error{Code: "body_too_large", Message: fmt.Sprintf("body exceeds %d bytes", tooBig.Limit)})
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.metrics.slowBodies.Inc()
			c.Header("Connection", "close")
			abort(c, http.StatusRequestTimeout, Error{Code: "body_timeout", Message: fmt.Sprintf("the body did not arrive within %v", timeout.Round(time.Millisecond))})
			return
		case err != nil:
			c.Header("Connection", "close")
			abort(c, http.StatusBadRequest, Error{Code: "invalid_request", Message: "could not read the body: " + err.Error()})
			return
		}
		body := buf.Bytes()
		if !utf8.Valid(body) {
			abortErr(c, invalidUTF8(body))
			return
		}
		c.Set(bodyKey, body)
		c.Next()
	}
}

// invalidUTF8 names the field holding the first byte that is not UTF-8.
func invalidUTF8(body []byte) error {
	off := 0
	for off < len(body) {
		r, n := utf8.DecodeRune(body[off:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		off += n
	}
	if f := jsonpath.At(body, int64(off)); f != "" {
		return badRequest(f, "field %q is not valid UTF-8 (byte %d)", f, off)
	}
	return badRequest("", "body is not valid UTF-8 (byte %d)", off)
}

// pathParam returns the path parameter name, unescaped (the router
// matches on the escaped path, so "a%2Fb" is one segment holding "a/b").
func pathParam(c *gin.Context, name string) (string, error) {
	v, err := url.PathUnescape(c.Param(name))
	if err != nil {
		return "", badRequest(name, "path parameter %s is not properly escaped", name)
	}
	return v, nil
}

// decode reads the body readBody left into v strictly: unknown fields and
// trailing data are errors, and every error names its field the way
// validation does ("items[0].embedding"), never a Go type.
func decode(c *gin.Context, v any) error {
	body, _ := c.Value(bodyKey).([]byte)
	return decodeBody(body, v)
}

// decodeBody is decode of body.
func decodeBody(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(body, v, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeError(body, v, err)
		}
		return badRequest("", "body must hold a single JSON value")
	}
	return nil
}

func decodeError(body []byte, v any, err error) error {
	var (
		syntax  *json.SyntaxError
		typ     *json.UnmarshalTypeError
		invalid *json.InvalidUnmarshalError
	)
	switch {
	case errors.As(err, &syntax):
		return badRequest("", "malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &typ):
		f := jsonpath.At(body, typ.Offset-1)
		if f == "" {
			f = jsonpath.Field(typ.Field)
		}
		if f == "" {
			return badRequest("", "body must be %s, not %s", jsonType(typ.Type), jsonValue(typ.Value))
		}
		return badRequest(f, "field %q must be %s, not %s", f, jsonType(typ.Type), jsonValue(typ.Value))
	case errors.Is(err, io.EOF):
		return badRequest("", "empty body")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "truncated JSON")
	case errors.As(err, &invalid):
		return err
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		f := jsonpath.Unknown(body, reflect.TypeOf(v), name)
		if f == "" {
			f = name
		}
		return badRequest(f, "unknown field %q", f)
	}
	return badRequest("", "invalid JSON: %v", err)
}

// jsonType names what a Go type accepts in JSON terms.
func jsonType(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonType(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another type"
}

// jsonValue phrases encoding/json's description of the value it got
// ("string", "number 1.5", "array", ...).
func jsonValue(v string) string {
	switch {
	case v == "bool":
		return "a boolean"
	case v == "array" || v == "object":
		return "an " + v
	case strings.HasPrefix(v, "number "):
		return "the number " + strings.TrimPrefix(v, "number ")
	case v == "":
		return "that"
	}
	return "a " + v
}
