package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/novarec/novarec/internal/jsonpath"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 1 << 20

// Error is the body of every non-2xx answer (DESIGN.md §5).
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

type errorBody struct {
	Error Error `json:"error"`
}

// requestError is an error that maps to a 4xx answer naming a field.
type requestError struct {
	status int
	body   Error
}

func (e *requestError) Error() string { return e.body.Message }

func badRequest(field, format string, args ...any) *requestError {
	return &requestError{http.StatusBadRequest, Error{Code: "invalid_request", Message: fmt.Sprintf(format, args...), Field: field}}
}

func abort(c *gin.Context, status int, e Error) {
	c.AbortWithStatusJSON(status, errorBody{e})
}

func abortErr(c *gin.Context, err error) {
	var re *requestError
	if errors.As(err, &re) {
		abort(c, re.status, re.body)
		return
	}
	abort(c, http.StatusInternalServerError, Error{Code: "internal", Message: "internal error"})
}

// decode reads one JSON value strictly: unknown fields, trailing data and
// bodies over MaxBodyBytes are errors that name what is wrong.
func decode(c *gin.Context, v any) error {
	body := http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeError(err)
		}
		return badRequest("", "body must hold a single JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var (
		syntax  *json.SyntaxError
		typ     *json.UnmarshalTypeError
		tooBig  *http.MaxBytesError
		invalid *json.InvalidUnmarshalError
	)
	switch {
	case errors.As(err, &tooBig):
		return &requestError{http.StatusRequestEntityTooLarge, Error{Code: "body_too_large", Message: fmt.Sprintf("body exceeds %d bytes", tooBig.Limit)}}
	case errors.As(err, &syntax):
		return badRequest("", "malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &typ):
		f := jsonpath.Field(typ.Field)
		return badRequest(f, "field %q must be %s, not %s", f, typ.Type, typ.Value)
	case errors.Is(err, io.EOF):
		return badRequest("", "empty body")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "truncated JSON")
	case errors.As(err, &invalid):
		return err
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return badRequest(name, "unknown field %q", name)
	}
	return badRequest("", "invalid JSON: %v", err)
}
