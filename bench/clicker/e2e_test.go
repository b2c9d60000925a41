package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/internal/redistest"
)

// startRecsvc builds cmd/recsvc and runs it on a free loopback port in
// embedded mode (on the real Redis of REDIS_ADDR under a unique prefix when
// set), and returns its base URL. The clicker is checked against the real
// command, as its users would run it.
func startRecsvc(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build recsvc")
	}
	bin := filepath.Join(t.TempDir(), "recsvc")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/novarec/novarec/cmd/recsvc").CombinedOutput(); err != nil {
		t.Fatalf("build recsvc: %v\n%s", err, out)
	}
	args := []string{"-addr", "127.0.0.1:0", "-playground=false", "-collab-refit", "0", "-kafka", ""}
	if addr := os.Getenv(redistest.EnvAddr); addr != "" {
		prefix := redistest.Prefix(t)
		args = append(args, "-redis", addr, "-prefix", prefix, "-insecure-open")
		t.Cleanup(func() {
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			defer rdb.Close()
			if err := redistest.DeletePrefix(context.Background(), rdb, prefix); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	cmd := exec.Command(bin, args...)
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	served := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "recsvc serving" {
				served <- line.Addr
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second): // a hang guard, not a timing
			_ = cmd.Process.Kill()
			<-done
		}
	})
	select {
	case addr := <-served:
		return "http://" + addr
	case <-time.After(time.Minute): // a hang guard
		t.Fatal("recsvc did not start within a minute")
		return ""
	}
}

// TestAgainstRecsvc runs a handful of users against the real service: they
// get slates, and every click they send is recorded in the user state.
func TestAgainstRecsvc(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts recsvc")
	}
	base := startRecsvc(t)
	p := Population{Explorers: 2, Loyalists: 2, ExplorerRho: 1, LoyalistRho: 0, Sessions: 2, Slates: 3, K: 5,
		Concurrency: 2, Seed: 3, RunID: "e2e", Behaviour: DefaultBehaviour()}
	p.Behaviour.ClickRate = 1 // every user clicks something on most slates
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := NewClient(base, "")
	recs, sent, err := Run(ctx, c, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4*2*3 {
		t.Fatalf("%d slates, want %d", len(recs), 4*2*3)
	}
	for _, r := range recs {
		if r.Shown != p.K || r.Degraded {
			t.Fatalf("slate %+v: want %d items, not degraded", r, p.K)
		}
	}
	if sent == 0 {
		t.Fatal("no clicks sent")
	}
	got, err := Recorded(ctx, c, p, sent, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got != sent {
		t.Errorf("service recorded %d clicks, the clicker sent %d", got, sent)
	}
	s := Summarise(base, recs)
	if s.Explorers.Users != 2 || s.Loyalists.Users != 2 || s.ColdServiceNovel != 1 {
		t.Errorf("summary: %+v", s)
	}
}
