package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/novarec/novarec/apikey"
)

// Authorizer decides whether a request may use a route of a scope and
// returns the id of the key that may; a refusal is an *apikey.Denied.
// apikey.Keyring implements it.
type Authorizer interface {
	Authorize(r *http.Request, scope apikey.Scope) (keyID string, err error)
}

// Gin context keys of the auth and audit middleware.
const (
	ctxKeyID = "novarec.key_id"
	ctxAudit = "novarec.audit"
)

// require admits a request to a route of scope, or answers 401, 403 or 429
// with the JSON error body (and WWW-Authenticate or Retry-After).
func (s *Server) require(scope apikey.Scope) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, err := s.cfg.Keys.Authorize(c.Request, scope)
		if err == nil {
			c.Set(ctxKeyID, id)
			c.Next()
			return
		}
		var d *apikey.Denied
		if !errors.As(err, &d) {
			s.log.Error("authorize", "err", err)
			abort(c, http.StatusInternalServerError, Error{Code: "internal", Message: "internal error"})
			return
		}
		if d.KeyID != "" {
			c.Set(ctxKeyID, d.KeyID)
		}
		switch d.Status {
		case http.StatusUnauthorized:
			c.Header("WWW-Authenticate", `Bearer realm="novarec"`)
		case http.StatusTooManyRequests:
			c.Header("Retry-After", strconv.Itoa(apikey.RetryAfterSeconds(d.RetryAfter)))
		}
		abort(c, d.Status, Error{Code: d.Code, Message: d.Message, Field: d.Field})
	}
}

// audited writes one info line per call of a route that changes what the
// service serves (catalog writes, experiment reloads), refused calls
// included: the action, which key, which route, the counts the handler
// added with auditAttrs, and the outcome. Never the key, never a user id.
// It goes before require, so that it sees refusals.
func (s *Server) audited(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		id := c.GetString(ctxKeyID)
		if id == "" {
			id = apikey.NoKey
		}
		status := c.Writer.Status()
		attrs := []slog.Attr{
			slog.String("action", action),
			slog.String("route", c.Request.Method+" "+c.FullPath()),
			slog.String("key_id", id),
			slog.Int("status", status),
			slog.String("outcome", outcome(status)),
		}
		if extra, ok := c.Get(ctxAudit); ok {
			attrs = append(attrs, extra.([]slog.Attr)...)
		}
		s.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "audit", attrs...)
	}
}

// auditAttrs adds counts to the request's audit line.
func auditAttrs(c *gin.Context, attrs ...slog.Attr) {
	if prev, ok := c.Get(ctxAudit); ok {
		attrs = append(prev.([]slog.Attr), attrs...)
	}
	c.Set(ctxAudit, attrs)
}

func outcome(status int) string {
	switch {
	case status < 300:
		return "ok"
	case status == http.StatusUnauthorized:
		return "unauthorized"
	case status == http.StatusForbidden:
		return "forbidden"
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status < 500:
		return "invalid"
	}
	return "error"
}
