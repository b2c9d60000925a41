package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/novarec/novarec/api"
	"github.com/novarec/novarec/apikey"
	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/internal/logtest"
)

// TestRefusesRealServersWithoutKeys: with real Redis or Kafka and no keys
// file recsvc does not start (before dialling anything), unless
// -insecure-open says so.
func TestRefusesRealServersWithoutKeys(t *testing.T) {
	for _, cfg := range []config{
		{redisAddrs: []string{"127.0.0.1:1"}},
		{kafka: []string{"127.0.0.1:1"}},
		{redisAddrs: []string{"127.0.0.1:1"}, kafka: []string{"127.0.0.1:1"}, adminToken: "guards only the admin routes"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := run(ctx, cfg, slog.New(slog.DiscardHandler), func(running) { t.Error("recsvc started") })
		cancel()
		if err == nil || !strings.Contains(err.Error(), "-insecure-open") || !strings.Contains(err.Error(), "-api-keys") {
			t.Errorf("redis %v kafka %v without keys: %v, want a refusal naming -api-keys and -insecure-open", cfg.redisAddrs, cfg.kafka, err)
		}
	}

	t.Setenv("NOVAREC_API_KEYS", "")
	t.Setenv("NOVAREC_RATE_LIMITS", "catalog=2:4")
	c, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.rateLimits[apikey.Catalog] != (apikey.Limit{Rate: 2, Burst: 4}) || c.rateLimits[apikey.Recommend] != apikey.DefaultLimits()[apikey.Recommend] {
		t.Errorf("NOVAREC_RATE_LIMITS=catalog=2:4 gave %v", c.rateLimits)
	}
	for _, args := range [][]string{
		{"-api-keys", "/etc/keys", "-insecure-open"},
		{"-rate-limits", "recommend=fast"},
	} {
		if _, err := parseConfig(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// send calls s with key as a bearer token ("" = none) and returns the status.
func (s *system) send(t *testing.T, method, path, key, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func writeKeys(t *testing.T, path string, keys ...apikey.Key) {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k.Line() + "\n")
	}
	if err := os.WriteFile(path+".new", []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// TestAPIKeys runs recsvc with a keys file and the old admin token: each
// client reaches its routes and only those, a key rotated in the file takes
// effect without a restart (by polling, and by SIGHUP), requests are
// counted by key id, and neither the log nor /metrics holds a key.
func TestAPIKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	frontend1, kf1 := apikey.Generate("frontend-1", apikey.Recommend, apikey.Feedback)
	frontend2, kf2 := apikey.Generate("frontend-2", apikey.Recommend, apikey.Feedback)
	frontend3, kf3 := apikey.Generate("frontend-3", apikey.Recommend, apikey.Feedback)
	pipeline, kp := apikey.Generate("pipeline", apikey.Catalog)
	const adminToken = "legacy-admin-token-5d1c"
	path := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, path, kf1, kp)
	logs, log := logtest.New()
	limits, err := apikey.ParseLimits("recommend=off")
	if err != nil {
		t.Fatal(err)
	}
	s := startLogging(t, config{sampleItems: 300, updater: "off", trainer: "off", apiKeys: path, adminToken: adminToken,
		rateLimits: limits, keysPoll: 20 * time.Millisecond}, log)

	b, err := json.Marshal(api.ItemsRequest{Items: catalog.Sample(5, 3)})
	if err != nil {
		t.Fatal(err)
	}
	items := string(b)
	rec := `{"user_id":"keys-user-91","k":3}`
	for _, c := range []struct {
		method, path, key, body string
		want                    int
	}{
		{"POST", "/v1/recommend", frontend1, rec, 200},
		{"POST", "/v1/recommend", "", rec, 401},
		{"POST", "/v1/recommend", pipeline, rec, 403},
		{"PUT", "/v1/items", frontend1, items, 403},
		{"PUT", "/v1/items", pipeline, items, 200},
		{"GET", "/v1/users/keys-user-91/intent", frontend1, "", 403},
		{"GET", "/v1/admin/experiments", adminToken, "", 404}, // admitted; no experiment runs
		{"GET", "/v1/admin/experiments", frontend1, "", 403},
		{"GET", "/readyz", "", "", 200},
		{"GET", "/metrics", "", "", 200},
	} {
		if code := s.send(t, c.method, c.path, c.key, c.body); code != c.want {
			t.Errorf("%s %s with key %.12q: %d, want %d", c.method, c.path, c.key, code, c.want)
		}
	}

	// Rotation: add frontend-2, then drop frontend-1; the file is polled.
	rotated := func(in, out string) {
		t.Helper()
		eventually(t, "the rotated keys to be in force", func() bool {
			return s.send(t, "POST", "/v1/recommend", in, rec) == 200 && s.send(t, "POST", "/v1/recommend", out, rec) == 401
		})
	}
	writeKeys(t, path, kf1, kf2, kp)
	eventually(t, "the added key", func() bool { return s.send(t, "POST", "/v1/recommend", frontend2, rec) == 200 })
	writeKeys(t, path, kf2, kp)
	rotated(frontend2, frontend1)

	metrics := scrape(t, s.base)
	for _, want := range []string{
		`novarec_auth_requests_total{key_id="frontend-1",outcome="allowed",scope="recommend"}`,
		`novarec_auth_requests_total{key_id="pipeline",outcome="forbidden",scope="recommend"}`,
		`novarec_auth_requests_total{key_id="none",outcome="unauthorized",scope="recommend"}`,
		`novarec_auth_keys 3`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	// SIGHUP reloads at once, with polling out of the way.
	writeKeys(t, path, kf2, kp)
	s = startLogging(t, config{sampleItems: 300, updater: "off", trainer: "off", apiKeys: path, keysPoll: time.Hour}, log)
	writeKeys(t, path, kf3, kp)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rotated(frontend3, frontend2)

	all := logs.String() + metrics
	for _, secret := range []string{frontend1, frontend2, frontend3, pipeline, adminToken, "keys-user-91"} {
		if strings.Contains(all, secret) {
			t.Errorf("the log or /metrics holds %q", secret)
		}
	}
	for _, want := range []string{`"action":"catalog.put","route":"PUT /v1/items","key_id":"pipeline","status":200,"outcome":"ok","items":5`,
		`"trigger":"sighup","outcome":"ok","keys":2,"added":["frontend-3"],"removed":["frontend-2"]`} {
		if !strings.Contains(all, want) {
			t.Errorf("no audit line with %s:\n%s", want, logs)
		}
	}
}
