package features

import (
	"errors"
	"fmt"
	"maps"
	"testing"
)

func TestIncrementalState(t *testing.T) {
	t.Parallel()
	s, client := newStore(t, Options{})
	ctx := t.Context()
	if _, err := s.LoadState(ctx, "trainer:default", "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadState before a commit: %v, want ErrNotFound", err)
	}
	if err := s.CommitState(ctx, "trainer:default", &StateDelta{}); err == nil {
		t.Fatal("a commit without a head was accepted")
	}
	if err := s.SaveCheckpoint(ctx, "trainer:default", []byte("old")); err != nil {
		t.Fatal(err)
	}
	// More fields than one HSET or HSCAN batch carries.
	first := &StateDelta{Head: []byte("h1"), Put: map[string]map[string][]byte{"a": {}, "b": {"x": []byte("1")}}, DropCheckpoint: "trainer:default"}
	want := map[string]string{}
	for i := range 2*stateBatch + 10 {
		k := fmt.Sprintf("f%d", i)
		first.Put["a"][k] = []byte{byte(i), 0, 0xff}
		want[k] = string([]byte{byte(i), 0, 0xff})
	}
	if err := s.CommitState(ctx, "trainer:default", first); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadCheckpoint(ctx, "trainer:default"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the migrated checkpoint is still there: %v", err)
	}
	var dels []string
	for i := range stateBatch + 5 {
		dels = append(dels, fmt.Sprintf("f%d", i))
		delete(want, fmt.Sprintf("f%d", i))
	}
	want["f2000"] = "new"
	second := &StateDelta{Head: []byte("h2"), Put: map[string]map[string][]byte{"a": {"f2000": []byte("new")}}, Del: map[string][]string{"a": dels, "b": {"x"}}}
	if err := s.CommitState(ctx, "trainer:default", second); err != nil {
		t.Fatal(err)
	}
	img, err := s.LoadState(ctx, "trainer:default", "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	if string(img.Head) != "h2" || !maps.Equal(img.Hashes["a"], want) || len(img.Hashes["b"]) != 0 {
		t.Errorf("loaded head %q, %d fields of a (want %d), b %v", img.Head, len(img.Hashes["a"]), len(want), img.Hashes["b"])
	}
	if head, err := s.StateHead(ctx, "trainer:default"); err != nil || string(head) != "h2" {
		t.Errorf("StateHead = %q, %v", head, err)
	}
	if n := second.Bytes(); n != len("h2")+len("f2000")+len("new")+len("x")+sumLen(dels) {
		t.Errorf("Bytes = %d", n)
	}
	// The keys share a hash tag (one Redis Cluster slot).
	if n, err := client.HLen(ctx, s.prefix+"state:{trainer:default}:h:a").Result(); err != nil || n != int64(len(want)) {
		t.Errorf("raw hash: %d fields, %v", n, err)
	}
	if err := s.DeleteState(ctx, "trainer:default", "a", "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadState(ctx, "trainer:default"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after DeleteState: %v", err)
	}
}

func sumLen(ss []string) int {
	n := 0
	for _, s := range ss {
		n += len(s)
	}
	return n
}

func TestStateOwner(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	ctx := t.Context()
	commit := func(owner, head string) error {
		return s.CommitState(ctx, "trainer:v", &StateDelta{Head: []byte(head), Owner: owner, Put: map[string]map[string][]byte{"a": {head: []byte("1")}}})
	}
	if err := commit("a", "h0"); !errors.Is(err, ErrStateOwner) {
		t.Fatalf("commit before any claim: %v", err)
	}
	if err := s.ClaimState(ctx, "trainer:v", "a"); err != nil {
		t.Fatal(err)
	}
	if err := commit("a", "h1"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimState(ctx, "trainer:v", "b"); err != nil {
		t.Fatal(err)
	}
	if err := commit("a", "h2"); !errors.Is(err, ErrStateOwner) {
		t.Fatalf("commit of the old owner: %v, want ErrStateOwner", err)
	}
	if err := commit("b", "h3"); err != nil {
		t.Fatal(err)
	}
	img, err := s.LoadState(ctx, "trainer:v", "a")
	if err != nil || string(img.Head) != "h3" || img.Hashes["a"]["h2"] != "" || img.Hashes["a"]["h1"] != "1" {
		t.Errorf("state %q %v, %v: the refused commit must leave no trace", img.Head, img.Hashes, err)
	}
}
