package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client speaks recsvc's public HTTP API and nothing else: recommend,
// feedback (clicks only), the item route for an item's categories and the
// intent route to check that clicks were recorded.
type Client struct {
	Base string // e.g. http://127.0.0.1:8080
	Key  string // sent as Authorization: Bearer when set
	HTTP *http.Client
	// Fallback gives an item's categories when the item route cannot (a
	// key without the catalog scope); nil = none.
	Fallback map[string][]string

	// Retried counts requests sent again after a 503 or 429.
	Retried atomic.Int64

	mu    sync.Mutex
	items map[string][]string
}

// attempts bounds how often one request is sent: a 503 (overloaded, or a
// store briefly unavailable) or a 429 is retried after Retry-After (at most
// maxBackoff) or a growing pause, as a well-behaved app would.
const (
	attempts   = 4
	maxBackoff = 2 * time.Second
)

// NewClient returns a client of the service at base.
func NewClient(base, key string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Key: key,
		HTTP: &http.Client{Timeout: 10 * time.Second}, items: map[string][]string{}}
}

// Slate is the part of a recommendation the clicker reads.
type Slate struct {
	RequestID    string `json:"request_id"`
	Variant      string `json:"variant"`
	ModelVersion string `json:"model_version"`
	Intent       struct {
		UserPropensity    float64 `json:"user_propensity"`
		SessionPropensity float64 `json:"session_propensity"`
		Level             int     `json:"level"`
	} `json:"intent"`
	Items []struct {
		ItemID string `json:"item_id"`
		Novel  bool   `json:"novel"`
	} `json:"items"`
	Degraded bool `json:"degraded"`
}

// statusError is an answer other than the one expected.
type statusError struct {
	method, path string
	status       int
	body         string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: status %d: %s", e.method, e.path, e.status, e.body)
}

// do sends body (nil = none) and decodes a 2xx answer into out (nil =
// discard), retrying refusals the service asks to be retried.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	for attempt := 1; ; attempt++ {
		wait, err := c.once(ctx, method, path, payload, out)
		if wait == 0 || attempt == attempts {
			return err
		}
		c.Retried.Add(1)
		select {
		case <-time.After(min(wait*time.Duration(attempt), maxBackoff)):
		case <-ctx.Done():
			return err
		}
	}
}

// once sends one request. A positive wait says the refusal may be retried
// after about that long.
func (c *Client) once(ctx context.Context, method, path string, payload []byte, out any) (wait time.Duration, err error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return 0, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		err := &statusError{method, path, resp.StatusCode, strings.TrimSpace(string(b))}
		if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
			return 0, err
		}
		wait := 200 * time.Millisecond
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		return wait, err
	}
	if out == nil {
		return 0, nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return 0, nil
}

// Recommend asks for a slate of k items.
func (c *Client) Recommend(ctx context.Context, user, session string, k int) (*Slate, error) {
	var s Slate
	err := c.do(ctx, http.MethodPost, "/v1/recommend", map[string]any{"user_id": user, "session_id": session, "k": k}, &s)
	return &s, err
}

// Click sends one click on an item of the slate with request id req.
func (c *Client) Click(ctx context.Context, user, session, req, item string) error {
	return c.do(ctx, http.MethodPost, "/v1/feedback", map[string]any{
		"request_id": req, "user_id": user, "session_id": session, "item_id": item, "type": "click"}, nil)
}

// Categories returns an item's categories, asked of the service once and
// remembered.
func (c *Client) Categories(ctx context.Context, id string) ([]string, error) {
	c.mu.Lock()
	cats, ok := c.items[id]
	c.mu.Unlock()
	if ok {
		return cats, nil
	}
	var it struct {
		Categories []string `json:"categories"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/items/"+url.PathEscape(id), nil, &it)
	if err != nil {
		fb, ok := c.Fallback[id]
		if !ok {
			return nil, err
		}
		it.Categories = fb
	}
	c.mu.Lock()
	c.items[id] = it.Categories
	c.mu.Unlock()
	return it.Categories, nil
}

// RecordedClicks is the click count the service holds for a user.
func (c *Client) RecordedClicks(ctx context.Context, user string) (int, error) {
	var in struct {
		Stats struct {
			Clicks int `json:"clicks"`
		} `json:"stats"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(user)+"/intent", nil, &in)
	return in.Stats.Clicks, err
}
