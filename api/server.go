// Package api is novarec's HTTP surface: request decoding and validation,
// the recommend, feedback, catalog and intent handlers, health and metrics.
// Handlers read state through small interfaces so that tests and the
// embedded mode can wire them to anything; the policy itself is
// recommend.Engine.
package api

import (
	"context"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/novarec/novarec/apikey"
	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/experiment"
	"github.com/novarec/novarec/recommend"
)

// Store is the Redis-backed state the handlers need.
type Store interface {
	Load(ctx context.Context, userID, sessionID string) (recommend.UserState, error)
	// Shown reads the session's shown list, oldest first: what Load
	// puts in Session.Shown.
	Shown(ctx context.Context, userID, sessionID string) ([]string, error)
	RecordShown(ctx context.Context, userID, sessionID string, itemIDs []string) error
	PutItems(ctx context.Context, items []catalog.Item) (uint64, error)
	GetItem(ctx context.Context, id string) (catalog.Item, bool, error)
	Ping(ctx context.Context) error
}

// ShownRecorder records slates off the request path and answers what it
// has not written yet (features.ShownWriter).
type ShownRecorder interface {
	Record(ctx context.Context, userID, sessionID string, itemIDs []string) error
	// Queue records without writing and reports whether it did (false:
	// too much is pending, and Record would write synchronously).
	Queue(userID, sessionID string, itemIDs []string) bool
	Pending(userID, sessionID string) []string
	// Flush writes what is pending for the session now.
	Flush(ctx context.Context, userID, sessionID string) error
}

// Publisher sends events to Kafka without blocking; false means the event
// was not accepted (buffer full).
type Publisher interface {
	Publish(topic, key string, value []byte) bool
}

// EventLog makes an event durable before it returns: acknowledged by Kafka
// or kept in a local spool that delivers it later (events.Durable). An
// error means neither, and the event must not be acknowledged.
type EventLog interface {
	Write(ctx context.Context, topic, key string, value []byte) error
}

// Snapshots serves the current catalog snapshot (nil while the catalog is empty).
type Snapshots interface {
	Current() *catalog.Snapshot
}

// Models serves the current model of each A/B variant.
type Models interface {
	Current(variant string) *recommend.Model
}

// Reports builds an experiment's A/B report from the aggregates its
// trainers maintain (features.Store).
type Reports interface {
	Report(ctx context.Context, cfg *experiment.Config) (experiment.Report, error)
}

// Experiments serves the current A/B experiment (nil when none runs) and
// reloads it from its file.
type Experiments interface {
	Current() *experiment.Config
	Reload(ctx context.Context) (*experiment.Config, error)
}

// Check is one dependency, probed in the background and reported by
// /readyz, its error text as the dependency's state.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
	// Shared marks a dependency every replica shares (Kafka, like Redis):
	// while it fails, /readyz reports it and says "degraded" but stays 200,
	// since another replica could not serve better (see ready.go).
	Shared bool
}

// Config wires a Server.
type Config struct {
	Store Store
	// Shown, when set, records shown items asynchronously; otherwise
	// Store.RecordShown writes them before the response.
	Shown ShownRecorder
	// Events takes impressions, best effort: dropped and counted when the
	// producer's buffer is full.
	Events Publisher
	// Feedback takes feedback events, which are answered 202 only once
	// Feedback.Write has made them durable.
	Feedback EventLog
	Catalog  Snapshots
	Models   Models
	// Experiments assigns users to variants; nil puts everyone in
	// DefaultVariant.
	Experiments Experiments
	// Reports serves GET /v1/experiments/{name}/report.
	Reports Reports
	// Keys decides who may call which route (apikey.Keyring). Nil admits
	// every request to the data, catalog and intent routes and turns the
	// admin routes off, as before there were keys.
	Keys   Authorizer
	Engine *recommend.Engine
	// Registry receives the server's metrics and serves /metrics.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// StoreTimeout bounds each Redis round trip of a request (default 100ms,
	// recsvc -redis-budget), after which recommend answers degraded rather
	// than late.
	StoreTimeout time.Duration
	// Checks are probed for /readyz besides Redis.
	Checks []Check
	// Dim is the catalog's embedding dimension (default catalog.DefaultDim).
	Dim int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxInflight bounds the /v1/recommend and /v1/feedback requests served
	// at once; more are answered 503 "overloaded" without waiting (0 = no
	// bound; recsvc's default is DefaultMaxInflight). Health, metrics,
	// catalog and admin routes are never limited, so probes and scrapes
	// still answer under overload. A request counts against the bound only
	// once its body has been read (readBody).
	MaxInflight int
	// BodyTimeout is how long a client may take to send a request body
	// (default DefaultBodyTimeout; see readBody).
	BodyTimeout time.Duration
	// Playground, when set, serves the playground page at GET / and its
	// assets under /playground/.
	Playground http.Handler
}

// Server holds the handlers' dependencies and health state.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	handler http.Handler

	// redisUp is cleared by the breaker (breaker.go) and set again by the
	// prober or a successful trial request (see tryRedis); while it is
	// clear, requests skip Redis and answer degraded at once instead of
	// waiting out a budget each.
	redisUp atomic.Bool
	// redisFailures counts consecutive non-timeout Redis errors; window
	// the reads of the last second.
	redisFailures atomic.Int32
	window        rateWindow
	// nanotime is the breaker's clock (Unix ns); tests replace it.
	nanotime func() int64
	// lastTrial is when (Unix ns) a request last tried Redis while it was
	// marked down.
	lastTrial atomic.Int64
	// checks holds the last probe error per Config.Checks entry (nil = ok).
	checks []atomic.Pointer[string]
	// inflight is the semaphore of limitInflight (nil = no bound).
	inflight chan struct{}
	// baselines are the fixed baseline arms served (armOf).
	baselines baselines
}

// New builds a Server; call Run to start its health prober.
func New(cfg Config) *Server {
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 100 * time.Millisecond
	}
	if cfg.Dim <= 0 {
		cfg.Dim = catalog.DefaultDim
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Keys == nil {
		// Open and without Extra keys, New cannot fail.
		cfg.Keys, _ = apikey.New(apikey.Options{Open: true, Logger: cfg.Logger})
	}
	s := &Server{cfg: cfg, log: cfg.Logger, checks: make([]atomic.Pointer[string], len(cfg.Checks))}
	s.metrics = newMetrics(cfg.Registry, func() float64 { return float64(len(s.inflight)) })
	s.redisUp.Store(true)
	s.nanotime = func() int64 { return time.Now().UnixNano() }
	// dataPlane puts the in-flight bound in front of a data-plane handler;
	// the key check and the body read come before it (withBody below), so
	// a refused or dawdling request never takes an in-flight slot.
	dataPlane := func(h gin.HandlerFunc) []gin.HandlerFunc { return []gin.HandlerFunc{h} }
	if cfg.MaxInflight > 0 {
		s.inflight = make(chan struct{}, cfg.MaxInflight)
		dataPlane = func(h gin.HandlerFunc) []gin.HandlerFunc { return []gin.HandlerFunc{s.limitInflight, h} }
	}
	s.metrics.inflightLimit.Set(float64(cfg.MaxInflight))

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.ContextWithFallback = true
	// Route on the escaped path and unescape parameters in pathParam, so
	// that an id holding '/', '?', '#', '%' or '+' is read back as
	// GET /v1/items/{url.PathEscape(id)}. (gin's own unescaping is query
	// unescaping, which turns '+' into a space.)
	r.UseEscapedPath, r.UnescapePathValues = true, false
	r.Use(s.observe, s.recover)
	r.NoRoute(func(c *gin.Context) {
		abort(c, http.StatusNotFound, Error{Code: "not_found", Message: "no such route"})
	})
	r.NoMethod(func(c *gin.Context) {
		abort(c, http.StatusMethodNotAllowed, Error{Code: "method_not_allowed", Message: "method not allowed"})
	})
	r.HandleMethodNotAllowed = true
	// Each route needs one scope (docs/security.md); health and metrics
	// need none, so probes and scrapes work without a key. The key is
	// checked before the body is read: a refused client sends no body
	// the server waits for. withBody then reads and checks a JSON body
	// before the rest of the chain (the in-flight bound and the handler).
	withBody := func(scope apikey.Scope, limit int64, hs ...gin.HandlerFunc) []gin.HandlerFunc {
		return append([]gin.HandlerFunc{s.require(scope), requireJSON, s.readBody(limit)}, hs...)
	}
	r.POST(recommendRoute, withBody(apikey.Recommend, MaxBodyBytes, dataPlane(s.recommend)...)...)
	r.POST("/v1/feedback", withBody(apikey.Feedback, MaxBodyBytes, dataPlane(s.feedback)...)...)
	r.PUT("/v1/items", append([]gin.HandlerFunc{s.audited("catalog.put")}, withBody(apikey.Catalog, MaxItemsBodyBytes, s.putItems)...)...)
	r.GET("/v1/items/:id", s.require(apikey.Catalog), s.getItem)
	r.GET("/v1/users/:id/intent", s.require(apikey.IntentRead), s.userIntent)
	r.POST("/v1/admin/experiments/reload", s.audited("experiments.reload"), s.require(apikey.Admin), s.reloadExperiments)
	r.GET("/v1/admin/experiments", s.require(apikey.Admin), s.getExperiments)
	r.GET("/v1/experiments/:name/report", s.require(apikey.Admin), s.experimentReport)
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry})))
	s.routeFrontDoor(r)
	s.handler = r
	return s
}

// recommendRoute is the route nearly every request takes.
const recommendRoute = "/v1/recommend"

// ServeHTTP makes the Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Run probes Redis and the other checks every interval until ctx ends. The
// caller owns the goroutine that runs it.
func (s *Server) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) probe(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(pctx); err != nil {
		s.setRedis(false, tripProbe)
	} else {
		s.setRedis(true, "")
	}
	for i, ch := range s.cfg.Checks {
		err := ch.Probe(pctx)
		if err != nil {
			msg := err.Error()
			s.checks[i].Store(&msg)
		} else {
			s.checks[i].Store(nil)
		}
		s.metrics.dependencyUp.WithLabelValues(ch.Name).Set(b2f(err == nil))
	}
}

// recover turns a panic into a 500 with the JSON error body; the handlers
// are written not to panic, this is the last line.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panic", "route", c.FullPath(), "panic", r)
			abort(c, http.StatusInternalServerError, Error{Code: "internal", Message: "internal error"})
		}
	}()
	c.Next()
}

func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route, code := c.FullPath(), c.Writer.Status()
	if route == recommendRoute && code == http.StatusOK && c.Request.Method == http.MethodPost {
		s.metrics.recommendOK.Inc()
		s.metrics.recommendLatency.Observe(time.Since(start).Seconds())
		return
	}
	if route == "" {
		route = "unmatched"
	}
	s.metrics.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(code)).Inc()
	s.metrics.latency.WithLabelValues(route, c.Request.Method).Observe(time.Since(start).Seconds())
}

// newID returns 128 random bits in hex, unique enough for request and event
// ids without a crypto read on the hot path.
func newID() string {
	var b [16]byte
	u, v := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		b[i], b[8+i] = byte(u>>(8*i)), byte(v>>(8*i))
	}
	return hex.EncodeToString(b[:])
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
