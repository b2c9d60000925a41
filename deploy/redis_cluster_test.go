package deploy_test

// Redis Cluster and Sentinel through go-redis's UniversalClient (issue 6,
// item 2). recsvc and the trainer build their client as
//
//	redis.NewUniversalClient(&redis.UniversalOptions{Addrs: strings.Split(REDIS_ADDR, ",")})
//
// which is a single-node client for one address and a Cluster client for
// several. TestStoreOnRedisCluster runs the Store's operations against a
// real three-master Redis Cluster on loopback when redis-server is installed.

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/internal/envflag"
	"github.com/novarec/novarec/recommend"
)

func TestRedisAddrSelectsTheClient(t *testing.T) {
	for _, tc := range []struct {
		env, master string
		want        string
	}{
		{"redis:6379", "", "*redis.Client"},
		{"r0:6379, r1:6379,r2:6379", "", "*redis.ClusterClient"},
		// Sentinel needs a master name, which recsvc and the trainer do not
		// set (no flag or variable): several addresses give a Cluster client.
		{"s0:26379,s1:26379,s2:26379", "mymaster", "*redis.Client"},
	} {
		addrs := envflag.List(tc.env)
		c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, MasterName: tc.master})
		if got := fmt.Sprintf("%T", c); got != tc.want {
			t.Errorf("REDIS_ADDR=%q master=%q: %s, want %s", tc.env, tc.master, got, tc.want)
		}
		if len(addrs) > 1 && len(addrs) != strings.Count(tc.env, ",")+1 {
			t.Errorf("REDIS_ADDR=%q parsed as %q", tc.env, addrs)
		}
		_ = c.Close()
	}
}

// freePortPair returns a loopback port p such that p and p+10000 (the
// cluster bus port) are both free right now.
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if p+10000 > 65535 {
			continue
		}
		if bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000)); err == nil {
			_ = bus.Close()
			return p
		}
	}
	t.Fatal("no free port pair for a Redis Cluster node")
	return 0
}

// startRedisCluster starts three cluster-enabled redis-server processes on
// loopback, joins them into a cluster of three masters and returns their
// addresses. They are killed when the test ends.
func startRedisCluster(t *testing.T) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Redis Cluster; skipped with -short")
	}
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed; the Cluster test needs it")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed; the Cluster test needs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	var addrs []string
	for range 3 {
		port := freePortPair(t)
		dir := t.TempDir()
		cmd := exec.Command(server, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", dir+"/nodes.conf", "--cluster-node-timeout", "5000",
			"--dir", dir, "--save", "", "--appendonly", "no")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		for c.Ping(ctx).Err() != nil {
			if ctx.Err() != nil {
				t.Fatalf("redis-server %s did not start", a)
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = c.Close()
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	if out, err := exec.CommandContext(ctx, cli, append(args, "--cluster-yes")...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("cluster node %s never reached cluster_state:ok: %q %v", a, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = c.Close()
	}
	return addrs
}

func TestStoreOnRedisCluster(t *testing.T) {
	addrs := startRedisCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: envflag.List(strings.Join(addrs, ","))})
	defer client.Close()
	cc, ok := client.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("client for %v is %T, want *redis.ClusterClient", addrs, client)
	}
	store := features.NewStore(client, features.Options{Prefix: "nr:"})

	// Catalog: item keys spread over every master; pipelines split by slot.
	var items []catalog.Item
	cats := []string{"drama", "comedy", "horror", "western", "war"}
	for i := range 200 {
		items = append(items, catalog.Item{ID: "i" + strconv.Itoa(i), Categories: []string{cats[i%len(cats)]}, Popularity: float64(200 - i)})
	}
	version, err := store.PutItems(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if v, got, err := store.LoadItems(ctx); err != nil || v != version || len(got) != len(items) {
		t.Fatalf("LoadItems = version %d, %d items, %v; want %d, %d", v, len(got), err, version, len(items))
	}
	snap, err := catalog.Build(version, catalog.DefaultDim, items)
	if err != nil {
		t.Fatal(err)
	}

	// Model snapshots and their announcement (pub/sub crosses nodes).
	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	updates, err := store.Subscribe(subCtx, features.ModelUpdates)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutModel(ctx, "default", []byte("snapshot")); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-updates:
		if v != "default" {
			t.Errorf("model update announced %q, want default", v)
		}
	case <-time.After(time.Minute):
		t.Error("the model update announcement did not arrive through the cluster")
	}
	if b, err := store.GetModel(ctx, "default"); err != nil || string(b) != "snapshot" {
		t.Errorf("GetModel = %q, %v", b, err)
	}
	if err := store.SaveCheckpoint(ctx, "default", []byte("ckpt")); err != nil {
		t.Fatal(err)
	}
	if b, err := store.LoadCheckpoint(ctx, "default"); err != nil || string(b) != "ckpt" {
		t.Errorf("LoadCheckpoint = %q, %v", b, err)
	}

	// Users: Save and ApplyFeedback are MULTI/EXEC transactions over all of a
	// user's keys, which Redis Cluster allows only within one slot.
	const users = 24
	for u := range users {
		id := "user-" + strconv.Itoa(u)
		err := store.Save(ctx, recommend.UserState{
			UserID:  id,
			History: []recommend.Consumed{{ItemID: "i1", TS: 1000}},
			Stats:   recommend.Stats{Clicks: 1, FamiliarClicks: 1, Sessions: 1, LastTS: 1000},
			Session: recommend.Session{ID: "s1", Start: 1000, Last: 1000, Clicks: 1},
		})
		if err != nil {
			t.Fatalf("Save %s: %v", id, err)
		}
		if err := store.RecordShown(ctx, id, "s1", []string{"i2", "i3"}); err != nil {
			t.Fatalf("RecordShown %s: %v", id, err)
		}
		fb := recommend.Feedback{UserID: id, SessionID: "s1", ItemID: "i4", Type: recommend.Click, TS: 2000}
		if _, applied, err := store.ApplyFeedback(ctx, snap, intent.ModeModel{}, "ev-"+id, fb); err != nil || !applied {
			t.Fatalf("ApplyFeedback %s = applied %v, %v", id, applied, err)
		}
		if _, applied, err := store.ApplyFeedback(ctx, snap, intent.ModeModel{}, "ev-"+id, fb); err != nil || applied {
			t.Fatalf("redelivered ApplyFeedback %s = applied %v, %v; want a duplicate", id, applied, err)
		}
		st, err := store.Load(ctx, id, "s1")
		if err != nil {
			t.Fatalf("Load %s: %v", id, err)
		}
		var hist []string
		for _, h := range st.History {
			hist = append(hist, h.ItemID)
		}
		if !slices.Equal(hist, []string{"i4", "i1"}) || !slices.Contains(st.Session.Shown, "i2") || st.Session.Clicks != 2 {
			t.Errorf("Load %s: history %v, shown %v, session clicks %d", id, hist, st.Session.Shown, st.Session.Clicks)
		}
	}

	// Every key of a user is on one slot; users spread over the masters.
	// ForEachMaster calls the function concurrently, one goroutine per master.
	var mu sync.Mutex
	slotOf := map[string]int64{}
	nodeOf := map[string]string{}
	err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, "nr:{u:*").Result()
		if err != nil {
			return err
		}
		for _, k := range keys {
			user := k[len("nr:{u:"):strings.IndexByte(k, '}')]
			slot, err := c.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			s, seen := slotOf[user]
			slotOf[user] = slot
			nodeOf[user] = c.Options().Addr
			mu.Unlock()
			if seen && s != slot {
				return fmt.Errorf("user %s has keys on slots %d and %d (%s)", user, s, slot, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(slotOf) != users {
		t.Errorf("found keys of %d users, want %d", len(slotOf), users)
	}
	nodes := map[string]bool{}
	for _, n := range nodeOf {
		nodes[n] = true
	}
	if len(nodes) < 2 {
		t.Errorf("all %d users landed on %d master(s); the test did not exercise several nodes", users, len(nodes))
	}
}
