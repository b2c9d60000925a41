package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/experiment"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/internal/redistest"
)

// testStore is a store under a key prefix of the test's own, on REDIS_ADDR
// or an embedded server, with the address the command under test dials.
func testStore(t *testing.T) (store *features.Store, addr, prefix string) {
	t.Helper()
	addr, prefix = os.Getenv(redistest.EnvAddr), redistest.Prefix(t)
	var rdb redis.UniversalClient
	if addr == "" {
		mr, client := redistest.Miniredis(t)
		addr, rdb = mr.Addr(), client
	} else {
		rdb = redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() {
			_ = redistest.DeletePrefix(context.Background(), rdb, prefix)
			rdb.Close()
		})
	}
	return features.NewStore(rdb, features.Options{Prefix: prefix}), addr, prefix
}

func TestABReport(t *testing.T) {
	store, addr, prefix := testStore(t)
	ctx := context.Background()
	for v, a := range map[string]experiment.Aggregates{
		"control": {Users: 1000, Impressions: 5000, ClickedImpressions: 500, Clicks: 520, NovelClicks: 50},
		"nov3":    {Users: 1010, Impressions: 5100, ClickedImpressions: 610, Clicks: 640, NovelClicks: 150},
	} {
		if err := store.PutAggregates(ctx, "nov-weights", v, a); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "exp.yaml")
	yaml := "name: nov-weights\nsalt: s\nvariants:\n  - {name: control, share: 0.5}\n  - {name: nov3, share: 0.5, reward: {w_nov: 3}}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := abReportMain(ctx, []string{"-experiments", file, "-redis", addr, "-prefix", prefix}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"experiment nov-weights (control control)", "nov3", "ctr", "novel_click_rate", "sample ratio check"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}
