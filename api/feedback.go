package api

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/recommend"
)

// FeedbackRequest is the body of POST /v1/feedback.
type FeedbackRequest struct {
	RequestID string   `json:"request_id,omitempty"`
	UserID    string   `json:"user_id"`
	SessionID string   `json:"session_id,omitempty"`
	ItemID    string   `json:"item_id"`
	Type      string   `json:"type"`
	Value     *float64 `json:"value,omitempty"`
	// TS is the event time in Unix milliseconds (default: now).
	TS int64 `json:"ts,omitempty"`
}

// maxFutureSkew bounds how far ahead of the server's clock an event may be.
const maxFutureSkew = 5 * 60 * 1000

// MaxFeedbackValue bounds |value|: a rating or a dwell time in seconds is
// far below it, and a learner fed 1e300 would learn nothing else.
const MaxFeedbackValue = 1e6

func (s *Server) feedback(c *gin.Context) {
	var req FeedbackRequest
	if err := decode(c, &req); err != nil {
		abortErr(c, err)
		return
	}
	now := s.cfg.Now().UnixMilli()
	if err := req.validate(now); err != nil {
		abortErr(c, err)
		return
	}
	if err := s.knownItem(c.Request.Context(), req.ItemID); err != nil {
		abortErr(c, err)
		return
	}
	ev := events.Feedback{
		Schema: events.SchemaVersion, EventID: newID(), RequestID: req.RequestID,
		UserID: req.UserID, SessionID: req.SessionID, ItemID: req.ItemID, Type: req.Type,
		Variant: s.variantOf(req.UserID), TS: req.TS,
	}
	if ev.TS == 0 {
		ev.TS = now
	}
	if req.Value != nil {
		ev.Value = *req.Value
	}
	if s.cfg.Shown != nil {
		// The feature updater reads where the item stood in the slate
		// from the recorded shown list (the cascade's skips): a client
		// that clicks within milliseconds of the answer must not beat
		// the batched write of that slate. A failure only costs the
		// event its mode evidence, so the feedback is still taken.
		fctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.StoreTimeout)
		if err := s.cfg.Shown.Flush(fctx, req.UserID, req.SessionID); err != nil {
			s.log.Debug("flushing the session's shown items before its feedback failed", "err", err)
		}
		cancel()
	}
	if ev.RequestID == "" {
		ev.RequestID = s.requestOf(c.Request.Context(), &req)
	}
	b, err := json.Marshal(&ev)
	if err != nil {
		abortErr(c, err)
		return
	}
	if err := s.cfg.Feedback.Write(c.Request.Context(), events.TopicFeedback, req.UserID, b); err != nil {
		// Refuse rather than acknowledge what might be lost: the client
		// retries, here or on another replica.
		s.metrics.published.WithLabelValues(events.TopicFeedback).Inc()
		s.log.Debug("feedback refused: it could not be made durable", "err", err)
		c.Header("Retry-After", "1")
		abort(c, http.StatusServiceUnavailable, Error{Code: "unavailable", Message: "the event log cannot take feedback right now; retry"})
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"event_id": ev.EventID})
}

// requestOf finds the request whose slate showed the item, for feedback
// that does not say: the latest slate of the session that holds it, from
// the recorded shown list (whose marks carry request ids). The trainer
// joins feedback to its impression by request id, so without this a client
// that sends only user, item and type (most do) would teach the model
// nothing. "" when no slate of the session showed it, or on a store error
// (the event is still taken; it only goes unattributed).
func (s *Server) requestOf(ctx context.Context, req *FeedbackRequest) string {
	if req.Type == recommend.Rating {
		return "" // a rating is of the item, not of a slate
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	shown, err := s.cfg.Store.Shown(ctx, req.UserID, req.SessionID)
	if err != nil {
		s.log.Debug("reading the session's shown items to attribute feedback failed", "err", err)
		return ""
	}
	if s.cfg.Shown != nil {
		shown = append(shown, s.cfg.Shown.Pending(req.UserID, req.SessionID)...)
	}
	return recommend.ShownRequest(shown, req.ItemID)
}

func (r *FeedbackRequest) validate(now int64) error {
	for _, f := range []struct {
		name, v  string
		required bool
	}{{"user_id", r.UserID, true}, {"item_id", r.ItemID, true}, {"session_id", r.SessionID, false}, {"request_id", r.RequestID, false}} {
		if err := validID(f.name, f.v, f.required); err != nil {
			return err
		}
	}
	switch r.Type {
	case recommend.Click, recommend.View, recommend.Skip:
	case recommend.Rating:
		if r.Value == nil {
			return badRequest("value", "a rating needs a value")
		}
	case "":
		return badRequest("type", "type is required")
	default:
		return badRequest("type", "type must be one of click, view, skip, rating")
	}
	if r.Value != nil && !(math.Abs(*r.Value) <= MaxFeedbackValue) {
		return badRequest("value", "value must be a number in [-%g, %g]", float64(MaxFeedbackValue), float64(MaxFeedbackValue))
	}
	if r.TS < 0 || r.TS > now+maxFutureSkew {
		return badRequest("ts", "ts must be Unix milliseconds, not in the future")
	}
	return nil
}

// knownItem rejects feedback on items the catalog does not have. The local
// snapshot answers almost always; an item added a moment ago is looked up
// in Redis, and if Redis cannot tell, the event is accepted rather than lost.
func (s *Server) knownItem(ctx context.Context, id string) error {
	if snap := s.cfg.Catalog.Current(); snap != nil {
		if _, ok := snap.Index(id); ok {
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	_, ok, err := s.cfg.Store.GetItem(ctx, id)
	if err != nil || ok {
		return nil
	}
	return &requestError{http.StatusNotFound, Error{Code: "unknown_item", Message: fmt.Sprintf("item %q is not in the catalog", id), Field: "item_id"}}
}
