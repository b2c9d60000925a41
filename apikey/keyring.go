package apikey

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Keyring.
type Options struct {
	// Path is the keys file; empty = no file, only Extra keys.
	Path string
	// Extra are keys that do not come from the file and survive every
	// reload: recsvc turns NOVAREC_ADMIN_TOKEN into one.
	Extra []Key
	// Open admits requests that carry no key to every scope but Admin
	// (embedded mode, -insecure-open). A key that is presented anyway is
	// not checked.
	Open bool
	// Limits are the per-key buckets (nil = DefaultLimits).
	Limits Limits
	// Registerer receives the metrics (nil = not registered).
	Registerer prometheus.Registerer
	// Logger receives the audit lines of reloads (nil = slog.Default()).
	Logger *slog.Logger
	// Now is the limiters' clock (default time.Now); tests drive a fake one.
	Now func() time.Time
}

// Keyring holds the keys in force and decides each request. Authorize is
// safe for concurrent use; reloads swap the whole set at once, so a request
// sees either the old keys or the new ones.
type Keyring struct {
	opts    Options
	log     *slog.Logger
	cur     atomic.Pointer[keySet]
	metrics *metrics
	state   reloadState
}

// keySet is one generation of keys; it is never modified once stored.
type keySet struct {
	entries []*entry
	// holders counts the keys holding each scope.
	holders map[Scope]int
	// sum is the SHA-256 of the file it was read from, to notice changes.
	sum [sha256.Size]byte
}

type entry struct {
	Key
	// limiters has a bucket per scope the key holds (nil = not limited).
	// Buckets carry over to the next generation for an id that stays, so
	// a reload neither resets nor shares them.
	limiters map[Scope]*bucket
}

// New returns a Keyring holding only opts.Extra; call Reload to read the
// keys file. It does no I/O, and fails only for invalid Extra keys.
func New(opts Options) (*Keyring, error) {
	if opts.Limits == nil {
		opts.Limits = DefaultLimits()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	for _, key := range opts.Extra {
		if !idPattern.MatchString(key.ID) || len(key.Scopes) == 0 || slices.ContainsFunc(key.Scopes, func(s Scope) bool { return !s.valid() }) {
			return nil, fmt.Errorf("api key %q: invalid id or scopes", key.ID)
		}
	}
	k := &Keyring{opts: opts, log: opts.Logger}
	set, err := k.build(nil, nil)
	if err != nil {
		return nil, err
	}
	k.metrics = newMetrics(opts.Registerer)
	k.cur.Store(set)
	k.metrics.keys.Set(float64(len(set.entries)))
	return k, nil
}

// Len is the number of keys in force.
func (k *Keyring) Len() int { return len(k.cur.Load().entries) }

// build makes the next generation from the file's keys and the Extra ones,
// carrying over the buckets of ids that stay.
func (k *Keyring) build(file []Key, prev *keySet) (*keySet, error) {
	old := map[string]*entry{}
	if prev != nil {
		for _, e := range prev.entries {
			old[e.ID] = e
		}
	}
	s := &keySet{holders: map[Scope]int{}}
	seen := map[string]bool{}
	for _, key := range append(file, k.opts.Extra...) {
		if seen[key.ID] {
			return nil, fmt.Errorf("key id %s is used twice (the keys file and NOVAREC_ADMIN_TOKEN's key?)", key.ID)
		}
		seen[key.ID] = true
		e := &entry{Key: key, limiters: map[Scope]*bucket{}}
		for _, sc := range key.Scopes {
			if o := old[key.ID]; o != nil && o.Has(sc) {
				e.limiters[sc] = o.limiters[sc]
			} else {
				e.limiters[sc] = k.opts.Limits.limiter(sc)
			}
			s.holders[sc]++
		}
		s.entries = append(s.entries, e)
	}
	return s, nil
}

// Denied is why a request was refused, with the HTTP status to answer.
type Denied struct {
	Status  int    // 401, 403 or 429
	Code    string // the JSON error code
	Message string
	// Field names the request header at fault, if any.
	Field string
	// KeyID is the key's id once it is known (403, 429).
	KeyID string
	// RetryAfter is when the key's bucket has a token again (429).
	RetryAfter time.Duration
}

func (d *Denied) Error() string { return d.Message }

// MaxKeyLen bounds a presented key; longer ones are refused unhashed.
const MaxKeyLen = 256

// Authorize decides whether r may use a route of scope and returns the id
// of the key that may (Anonymous in open mode). A refusal is a *Denied:
//
//   - 401 unauthorized: no key, a malformed Authorization header, or a key
//     that is not (or no longer) in force;
//   - 403 forbidden: a valid key without the route's scope;
//   - 403 admin_disabled: an admin route while no key holds the admin scope;
//   - 429 rate_limited: the key's bucket for scope is empty.
func (k *Keyring) Authorize(r *http.Request, scope Scope) (string, error) {
	set := k.cur.Load()
	if k.opts.Open && scope != Admin {
		k.metrics.count(Anonymous, scope, "allowed")
		return Anonymous, nil
	}
	if scope == Admin && set.holders[Admin] == 0 {
		k.metrics.count(NoKey, scope, "forbidden")
		return "", &Denied{Status: http.StatusForbidden, Code: "admin_disabled",
			Message: "admin routes are disabled: no API key holds the admin scope (see docs/security.md)"}
	}
	presented, field, denied := credential(r)
	if denied != nil {
		k.metrics.count(NoKey, scope, "unauthorized")
		return "", denied
	}
	e := set.match(presented)
	if e == nil {
		k.metrics.count(NoKey, scope, "unauthorized")
		return "", &Denied{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "unknown or revoked API key", Field: field}
	}
	if !e.Has(scope) {
		k.metrics.count(e.ID, scope, "forbidden")
		return "", &Denied{Status: http.StatusForbidden, Code: "forbidden", KeyID: e.ID,
			Message: fmt.Sprintf("API key %s lacks the scope %s this route needs", e.ID, scope)}
	}
	if b := e.limiters[scope]; b != nil {
		if wait := b.take(k.opts.Now); wait > 0 {
			k.metrics.count(e.ID, scope, "rate_limited")
			return "", &Denied{Status: http.StatusTooManyRequests, Code: "rate_limited", KeyID: e.ID, RetryAfter: wait,
				Message: fmt.Sprintf("API key %s is over its %s rate limit (%g requests/s, burst %d); retry later", e.ID, scope,
					float64(b.lim.Limit()), b.lim.Burst())}
		}
	}
	k.metrics.count(e.ID, scope, "allowed")
	return e.ID, nil
}

// RetryAfterSeconds is d as the whole seconds of a Retry-After header,
// rounded up so a client that waits that long finds a token.
func RetryAfterSeconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

// match returns the entry whose hash is the presented key's, comparing
// every entry in constant time so that how long a refusal takes says
// nothing about the keys in force.
func (s *keySet) match(presented string) *entry {
	h := sha256.Sum256([]byte(presented))
	var found *entry
	for _, e := range s.entries {
		if subtle.ConstantTimeCompare(h[:], e.Hash[:]) == 1 {
			found = e
		}
	}
	return found
}

// credential takes the key from "Authorization: Bearer KEY" (the scheme in
// any case, RFC 9110 §11.1) or, without that header, from "X-API-Key: KEY",
// and names the header it came from.
func credential(r *http.Request) (key, field string, _ *Denied) {
	field, key = "Authorization", r.Header.Get("Authorization")
	if key != "" {
		scheme, token, _ := strings.Cut(key, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", field, &Denied{Status: http.StatusUnauthorized, Code: "unauthorized", Field: field,
				Message: "the Authorization header must be Bearer KEY"}
		}
		key = strings.TrimSpace(token)
	} else if x := strings.TrimSpace(r.Header.Get("X-API-Key")); x != "" {
		field, key = "X-API-Key", x
	}
	switch {
	case key == "":
		return "", field, &Denied{Status: http.StatusUnauthorized, Code: "unauthorized", Field: field,
			Message: "an API key is required: Authorization: Bearer KEY or X-API-Key: KEY"}
	case len(key) > MaxKeyLen:
		return "", field, &Denied{Status: http.StatusUnauthorized, Code: "unauthorized", Field: field,
			Message: fmt.Sprintf("API keys are at most %d bytes", MaxKeyLen)}
	}
	return key, field, nil
}
