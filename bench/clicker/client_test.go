package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestClientRetries: a 503 is sent again and then succeeds; a 404 is not.
func TestClientRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/items/gone":
			http.Error(w, `{"error":{"code":"not_found"}}`, http.StatusNotFound)
		case calls.Add(1) == 1:
			http.Error(w, `{"error":{"code":"store_unavailable"}}`, http.StatusServiceUnavailable)
		default:
			w.Write([]byte(`{"id":"i","categories":["drama"]}`))
		}
	}))
	defer srv.Close()
	c := NewClient(srv.URL, "")
	cats, err := c.Categories(context.Background(), "i")
	if err != nil || len(cats) != 1 || cats[0] != "drama" || c.Retried.Load() != 1 {
		t.Fatalf("categories %v, err %v, retried %d: want [drama] after one retry", cats, err, c.Retried.Load())
	}
	if _, err := c.Categories(context.Background(), "gone"); err == nil || c.Retried.Load() != 1 {
		t.Errorf("404: err %v, retried %d: want an error and no retry", err, c.Retried.Load())
	}
	c.Fallback = map[string][]string{"gone": {"war"}}
	if cats, err := c.Categories(context.Background(), "gone"); err != nil || cats[0] != "war" {
		t.Errorf("with a fallback: %v, %v", cats, err)
	}
}
