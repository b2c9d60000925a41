package redistest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestPrefix(t *testing.T) {
	t.Run("weird {name} *?[x]", func(t *testing.T) {
		p1, p2 := Prefix(t), Prefix(t)
		if p1 == p2 {
			t.Errorf("prefixes not unique: %q", p1)
		}
		if !strings.HasPrefix(p1, "t:TestPrefix_weird__name_____x_:") || !strings.HasSuffix(p1, ":") {
			t.Errorf("prefix = %q", p1)
		}
		if strings.ContainsAny(p1, "{}*?[]\\ ") {
			t.Errorf("prefix %q has special characters", p1)
		}
	})
}

func TestDeletePrefix(t *testing.T) {
	_, client := Miniredis(t)
	ctx := t.Context()
	for _, k := range []string{"t:a:1:x", "t:a:1:{u:7}:hist", "t:a:10:x", "t:b:1:x"} {
		if err := client.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	_, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 2500 { // more than one SCAN page
			p.Set(ctx, "t:a:1:n"+strconv.Itoa(i), "v", 0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := DeletePrefix(ctx, client, "t:a:1:"); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !strings.Contains(strings.Join(keys, " "), "t:a:10:x") || !strings.Contains(strings.Join(keys, " "), "t:b:1:x") {
		t.Errorf("left keys %v, want t:a:10:x and t:b:1:x", keys)
	}
	if err := DeletePrefix(ctx, client, "t:*"); err == nil {
		t.Error("glob prefix accepted")
	}
}

// TestNewCleansUp checks, against a real Redis, that New deletes the test's
// keys (hash-tagged ones included) when the test ends.
func TestNewCleansUp(t *testing.T) {
	if os.Getenv(EnvAddr) == "" {
		t.Skip(EnvAddr + " not set; miniredis is discarded whole")
	}
	var prefix string
	t.Run("inner", func(t *testing.T) {
		var client redis.UniversalClient
		client, prefix = New(t)
		for _, k := range []string{prefix + "a", prefix + "{u:1}:hist"} {
			if err := client.Set(t.Context(), k, "v", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: strings.Split(os.Getenv(EnvAddr), ",")})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, _, err := client.Scan(ctx, 0, prefix+"*", 10000).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("keys left after cleanup: %v", keys)
	}
}

func TestElapse(t *testing.T) {
	client, prefix := New(t)
	ctx := t.Context()
	if err := client.Set(ctx, prefix+"k", "v", time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	Elapse(t, client, 1200*time.Millisecond)
	if n, err := client.Exists(ctx, prefix+"k").Result(); err != nil || n != 0 {
		t.Errorf("key still exists after its TTL: %d %v", n, err)
	}
}
