package features

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
)

// TestCommitPartsSumsSharedTotals has writers commit their own parts and
// add to a shared total concurrently, as trainer replicas add their model
// deltas: every addition lands once, and a writer whose part was claimed
// by another writes nothing.
func TestCommitPartsSumsSharedTotals(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	ctx := t.Context()
	const name, writers, commits = "trainer:parts", 2, 50
	add := func(n int) Merge {
		return func(head []byte, get SharedFields) (*StateDelta, error) {
			total, _ := strconv.Atoi(string(head))
			vs, err := get("items", "x")
			if err != nil {
				return nil, err
			}
			x, _ := strconv.Atoi(string(vs[0]))
			return &StateDelta{Head: []byte(strconv.Itoa(total + n)),
				Put: map[string]map[string][]byte{"items": {"x": []byte(strconv.Itoa(x + 2*n))}}}, nil
		}
	}
	epochs := make([]int64, writers)
	for w := range writers {
		var err error
		if epochs[w], err = s.ClaimPart(ctx, name, fmt.Sprintf("p%d", w)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			part := fmt.Sprintf("p%d", w)
			for i := range commits {
				d := &StateDelta{Head: []byte(strconv.Itoa(i + 1)), Put: map[string]map[string][]byte{"recs": {strconv.Itoa(i): {1}}}}
				if err := s.CommitParts(ctx, name, []PartDelta{{Part: part, Epoch: epochs[w], Delta: d}}, "model", add(1)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	img, err := s.LoadPart(ctx, name, "model", "items")
	if err != nil {
		t.Fatal(err)
	}
	if string(img.Head) != strconv.Itoa(writers*commits) || img.Hashes["items"]["x"] != strconv.Itoa(2*writers*commits) {
		t.Errorf("shared head %s, x %s; want %d and %d", img.Head, img.Hashes["items"]["x"], writers*commits, 2*writers*commits)
	}
	p0, err := s.LoadPart(ctx, name, "p0", "recs")
	if err != nil || string(p0.Head) != strconv.Itoa(commits) || len(p0.Hashes["recs"]) != commits {
		t.Errorf("part p0: %v, %v", p0, err)
	}

	// Writer 1 takes p0 over: writer 0's next commit (of p0 and p1 together)
	// writes nothing, not even its part p1 or the shared total.
	if _, err := s.ClaimPart(ctx, name, "p0"); err != nil {
		t.Fatal(err)
	}
	stale := []PartDelta{
		{Part: "p0", Epoch: epochs[0], Delta: &StateDelta{Head: []byte("stale")}},
		{Part: "p1", Epoch: epochs[1], Delta: &StateDelta{Head: []byte("stale")}},
	}
	if err := s.CommitParts(ctx, name, stale, "model", add(1000)); !errors.Is(err, ErrStateOwner) {
		t.Fatalf("commit under a stale epoch: %v, want ErrStateOwner", err)
	}
	for _, part := range []string{"p1", "model"} {
		if img, err := s.LoadPart(ctx, name, part); err != nil || string(img.Head) == "stale" || string(img.Head) == strconv.Itoa(writers*commits+1000) {
			t.Errorf("part %s changed by a refused commit: %q, %v", part, img.Head, err)
		}
	}
	if err := s.DeleteParts(ctx, name, []string{"p0", "p1", "model"}, "recs", "items"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadPart(ctx, name, "model"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after DeleteParts: %v", err)
	}
}
