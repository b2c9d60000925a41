package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
)

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
