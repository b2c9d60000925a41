package api

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/recommend"
)

// DefaultVariant is the variant of every user while no experiment runs.
const DefaultVariant = "default"

// variantOf assigns a user to a variant of the running experiment.
func (s *Server) variantOf(userID string) string {
	if s.cfg.Experiments != nil {
		if exp := s.cfg.Experiments.Current(); exp != nil {
			return exp.Assign(userID).Name
		}
	}
	return DefaultVariant
}

// variants lists the variants that may be served.
func (s *Server) variants() []string {
	if s.cfg.Experiments != nil {
		if exp := s.cfg.Experiments.Current(); exp != nil {
			names := make([]string, len(exp.Variants))
			for i, v := range exp.Variants {
				names[i] = v.Name
			}
			return names
		}
	}
	return []string{DefaultVariant}
}

// Request limits.
const (
	DefaultK   = 10
	MaxIDBytes = 128
	MaxExclude = 1000
)

// RecommendRequest is the body of POST /v1/recommend.
type RecommendRequest struct {
	UserID    string            `json:"user_id"`
	SessionID string            `json:"session_id,omitempty"`
	K         *int              `json:"k,omitempty"`
	Exclude   []string          `json:"exclude,omitempty"`
	Context   map[string]string `json:"context,omitempty"`
	// Deterministic asks for argmax decisions instead of sampled ones
	// (for debugging and evaluation; logged propensities stay meaningful).
	Deterministic bool `json:"deterministic,omitempty"`
}

// IntentOut is the high-level decision as the API shows it.
type IntentOut struct {
	UserPropensity    float64 `json:"user_propensity"`
	SessionPropensity float64 `json:"session_propensity"`
	Level             int     `json:"level"`
	Probability       float64 `json:"probability"`
}

// ItemOut is one recommended item.
type ItemOut struct {
	ItemID     string  `json:"item_id"`
	Score      float64 `json:"score"`
	Propensity float64 `json:"propensity"`
	Novel      bool    `json:"novel"`
	Position   int     `json:"position"`
}

// RecommendResponse is the body of a successful POST /v1/recommend.
type RecommendResponse struct {
	RequestID      string    `json:"request_id"`
	UserID         string    `json:"user_id"`
	SessionID      string    `json:"session_id,omitempty"`
	Variant        string    `json:"variant"`
	ModelVersion   string    `json:"model_version"`
	CatalogVersion uint64    `json:"catalog_version"`
	Intent         IntentOut `json:"intent"`
	Items          []ItemOut `json:"items"`
	Degraded       bool      `json:"degraded,omitempty"`
}

// validID applies the id grammar of catalog.CheckID to a request field.
func validID(field, v string, required bool) error {
	if v == "" && !required {
		return nil
	}
	if msg, ok := catalog.CheckID(v, MaxIDBytes); !ok {
		return badRequest(field, "%s %s", field, msg)
	}
	return nil
}

func (r *RecommendRequest) validate() (k int, err error) {
	if err := validID("user_id", r.UserID, true); err != nil {
		return 0, err
	}
	if err := validID("session_id", r.SessionID, false); err != nil {
		return 0, err
	}
	k = DefaultK
	if r.K != nil {
		k = *r.K
		if k < 1 || k > recommend.MaxK {
			return 0, badRequest("k", "k must be between 1 and %d", recommend.MaxK)
		}
	}
	if len(r.Exclude) > MaxExclude {
		return 0, badRequest("exclude", "exclude holds more than %d ids", MaxExclude)
	}
	for i, id := range r.Exclude {
		if err := validID(fmt.Sprintf("exclude[%d]", i), id, true); err != nil {
			return 0, err
		}
	}
	return k, nil
}

func (s *Server) recommend(c *gin.Context) {
	var req RecommendRequest
	if body, _ := c.Value(bodyKey).([]byte); !fastRecommendRequest(body, &req) {
		if err := decode(c, &req); err != nil {
			abortErr(c, err)
			return
		}
	}
	k, err := req.validate()
	if err != nil {
		abortErr(c, err)
		return
	}
	variant := s.variantOf(req.UserID)
	a, err := s.armOf(variant)
	if err != nil {
		abortErr(c, err)
		return
	}
	snap, model := s.cfg.Catalog.Current(), a.model
	if snap == nil || model == nil {
		abort(c, http.StatusServiceUnavailable, Error{Code: "not_ready", Message: "catalog is empty or model not loaded; PUT /v1/items first"})
		return
	}
	ctx := c.Request.Context()
	now := s.cfg.Now()

	st, degraded := s.loadState(ctx, req.UserID, req.SessionID)
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	d, err := a.engine.Decide(recommend.Request{K: k, Exclude: req.Exclude, Now: now.UnixMilli(), Deterministic: req.Deterministic || a.fixed()}, &st, snap, model, rng)
	if err != nil {
		abortErr(c, err)
		return
	}
	resp := RecommendResponse{
		RequestID:      newID(),
		UserID:         req.UserID,
		SessionID:      req.SessionID,
		Variant:        variant,
		ModelVersion:   model.Version,
		CatalogVersion: snap.Version,
		Intent: IntentOut{
			UserPropensity:    d.Intent.UserPropensity,
			SessionPropensity: d.Intent.SessionPropensity,
			Level:             d.Intent.Level,
			Probability:       d.Intent.Probability,
		},
		Items:    make([]ItemOut, len(d.Items)),
		Degraded: degraded,
	}
	// What the session's Shown list gets: recommend.ShownRecord(the
	// request, the ids).
	shown := make([]string, len(d.Items)+1)
	shown[0] = recommend.SlateMarkFor(resp.RequestID)
	imp := events.Impression{
		Schema: events.ImpressionSchema, EventID: resp.RequestID, RequestID: resp.RequestID,
		UserID: req.UserID, SessionID: req.SessionID, Variant: variant, ModelVersion: model.Version,
		Degraded: degraded, TS: now.UnixMilli(),
	}
	imp.SetDecision(&d)
	for i, it := range d.Items {
		resp.Items[i] = ItemOut{ItemID: it.ItemID, Score: it.Score, Propensity: it.Propensity, Novel: it.Novel, Position: it.Position}
		shown[i+1] = it.ItemID
	}
	if !degraded {
		s.recordShown(ctx, req.UserID, req.SessionID, shown)
	}
	if len(imp.Items) > 0 {
		// Nothing shown (every candidate excluded), nothing to learn from:
		// consumers would dead-letter an impression without items.
		s.publishImpression(req.UserID, &imp)
	}
	s.metrics.levels.WithLabelValues(variant, levelLabel(d.Intent.Level)).Inc()
	writeRecommendResponse(c, &resp)
}

// loadState reads the user's state; on a Redis failure it answers an empty
// state and degraded=true so the request is served from the popular pool.
func (s *Server) loadState(ctx context.Context, userID, sessionID string) (recommend.UserState, bool) {
	if !s.redisUp.Load() && !s.tryRedis() {
		s.metrics.degraded.WithLabelValues(causeRedisDown).Inc()
		return recommend.UserState{UserID: userID}, true
	}
	lctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	start := time.Now()
	st, err := s.cfg.Store.Load(lctx, userID, sessionID)
	s.metrics.redisLoad.Observe(time.Since(start).Seconds())
	if err == nil && s.cfg.Shown != nil {
		st.Session.Shown = append(st.Session.Shown, s.cfg.Shown.Pending(userID, sessionID)...)
	}
	if err != nil {
		if ctx.Err() != nil {
			// The client went away (a batched load stops waiting at once):
			// no Redis failure, and no answer anyone will see to count.
			return recommend.UserState{UserID: userID}, true
		}
		s.redisFailed(s.nanotime(), err)
		cause := causeRedisError
		if isTimeout(err) {
			cause = causeRedisTimeout
		}
		s.log.Debug("load user state failed; serving degraded", "cause", cause, "err", err)
		s.metrics.degraded.WithLabelValues(cause).Inc()
		return recommend.UserState{UserID: userID}, true
	}
	s.redisOK(s.nanotime())
	return st, false
}

func (s *Server) recordShown(ctx context.Context, userID, sessionID string, items []string) {
	start := time.Now()
	// Queued, as nearly always, the slate needs no deadline: only a write
	// on the request path does (a context and a timer cost a request more
	// than the queueing).
	if s.cfg.Shown != nil && s.cfg.Shown.Queue(userID, sessionID, items) {
		s.metrics.redis.WithLabelValues("record_shown").Observe(time.Since(start).Seconds())
		return
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	var err error
	if s.cfg.Shown != nil {
		err = s.cfg.Shown.Record(wctx, userID, sessionID, items)
	} else {
		err = s.cfg.Store.RecordShown(wctx, userID, sessionID, items)
	}
	s.metrics.redis.WithLabelValues("record_shown").Observe(time.Since(start).Seconds())
	if err != nil && ctx.Err() == nil {
		s.log.Warn("record shown items failed", "err", err)
		s.redisFailed(s.nanotime(), err)
	}
}

// publishImpression hands the impression to the producer; it never
// blocks. It is encoded by hand (events.Impression.AppendJSON, the bytes
// encoding/json would write) into a pooled buffer, then copied to a slice
// of its own, which the producer keeps until the broker has it.
func (s *Server) publishImpression(key string, imp *events.Impression) bool {
	bp := bufPool.Get().(*[]byte)
	b, err := imp.AppendJSON((*bp)[:0])
	if err != nil {
		bufPool.Put(bp)
		s.log.Error("encode event", "topic", events.TopicImpressions, "err", err)
		return false
	}
	v := bytes.Clone(b)
	if cap(b) <= 64<<10 {
		*bp = b
		bufPool.Put(bp)
	}
	if !s.cfg.Events.Publish(events.TopicImpressions, key, v) {
		s.metrics.published.WithLabelValues(events.TopicImpressions).Inc()
		return false
	}
	return true
}

func levelLabel(z int) string {
	if z >= 0 && z < 10 {
		return string(rune('0' + z))
	}
	return strconv.Itoa(z)
}

// IntentResponse is the body of GET /v1/users/{id}/intent.
type IntentResponse struct {
	UserID            string             `json:"user_id"`
	SessionID         string             `json:"session_id,omitempty"`
	Variant           string             `json:"variant"`
	ModelVersion      string             `json:"model_version"`
	UserPropensity    float64            `json:"user_propensity"`
	SessionPropensity float64            `json:"session_propensity"`
	Level             int                `json:"level"`
	Probabilities     []float64          `json:"probabilities"`
	State             map[string]float64 `json:"state"`
	HistoryLength     int                `json:"history_length"`
	Stats             recommend.Stats    `json:"stats"`
}

func (s *Server) userIntent(c *gin.Context) {
	userID, err := pathParam(c, "id")
	if err == nil {
		err = validID("user_id", userID, true)
	}
	if err != nil {
		abortErr(c, err)
		return
	}
	sessionID := c.Query("session_id")
	if err := validID("session_id", sessionID, false); err != nil {
		abortErr(c, err)
		return
	}
	variant := s.variantOf(userID)
	a, err := s.armOf(variant)
	if err != nil {
		abortErr(c, err)
		return
	}
	snap, model := s.cfg.Catalog.Current(), a.model
	if snap == nil || model == nil {
		abort(c, http.StatusServiceUnavailable, Error{Code: "not_ready", Message: "catalog is empty or model not loaded"})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.StoreTimeout)
	defer cancel()
	st, err := s.cfg.Store.Load(ctx, userID, sessionID)
	if err != nil {
		abort(c, http.StatusServiceUnavailable, Error{Code: "store_unavailable", Message: "user state is unavailable"})
		return
	}
	d := a.engine.Intent(snap, &st, model, s.cfg.Now().UnixMilli())
	state := make(map[string]float64, len(d.State))
	for i, v := range d.State {
		state[intent.FeatureNames[i]] = v
	}
	c.JSON(http.StatusOK, IntentResponse{
		UserID: userID, SessionID: sessionID, Variant: variant, ModelVersion: model.Version,
		UserPropensity: d.UserPropensity, SessionPropensity: d.SessionPropensity, Level: d.Level,
		Probabilities: d.Probabilities, State: state, HistoryLength: len(st.History), Stats: st.Stats,
	})
}
