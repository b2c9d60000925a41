package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
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

	mu    sync.Mutex
	items map[string][]string
}

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

// do sends body (nil = none) and decodes a 2xx answer into out (nil = discard).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return &statusError{method, path, resp.StatusCode, strings.TrimSpace(string(b))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
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
