package features

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/novarec/novarec/internal/redistest"
)

func TestShownWriterBatchesAndAnswersPending(t *testing.T) {
	s, _ := newStore(t, Options{})
	w := NewShownWriter(s, nil)
	ctx := context.Background()
	if err := w.Record(ctx, "u", "s", []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(ctx, "u", "s", []string{"c"}); err != nil {
		t.Fatal(err)
	}
	if got := w.Pending("u", "s"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("pending %v before the flush", got)
	}
	if got := w.Pending("u", "other"); got != nil {
		t.Fatalf("pending of another session: %v", got)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(rctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := s.Load(ctx, "u", "s")
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Session.Shown) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shown items never written: %v", st.Session.Shown)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := w.Pending("u", "s"); got != nil {
		t.Fatalf("still pending after the write: %v", got)
	}
	// Records made just before shutdown are flushed on the way out.
	if err := w.Record(ctx, "u", "s", []string{"d"}); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	st, err := s.Load(ctx, "u", "s")
	if err != nil || !slices.Contains(st.Session.Shown, "d") {
		t.Fatalf("final flush lost a record: %v %v", st.Session.Shown, err)
	}
}

func TestShownWriterKeepsRecordsWhileRedisIsDown(t *testing.T) {
	mr, client := redistest.Miniredis(t)
	s := NewStore(client, Options{Prefix: "t:"})
	w := NewShownWriter(s, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	down, cancelDown := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelDown()
	mr.Close()
	if err := w.Record(ctx, "u", "s", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if w.flush(down) {
		t.Fatal("flush reported success with Redis down")
	}
	if got := w.Pending("u", "s"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("record lost after a failed write: %v", got)
	}
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	if !w.flush(ctx) {
		t.Fatal("flush failed after Redis came back")
	}
	st, err := s.Load(ctx, "u", "s")
	if err != nil || !slices.Equal(st.Session.Shown, []string{"a"}) {
		t.Fatalf("after recovery: %v %v", st.Session.Shown, err)
	}
	// Too much pending: Record writes synchronously and reports the error.
	w.MaxPending = 0
	mr.Close()
	down2, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if err := w.Record(down2, "u", "s", []string{"b"}); err == nil {
		t.Fatal("synchronous fallback did not report the failure")
	}
}

// Flush writes one session's pending records at once (the feedback
// handler's guarantee that a click never overtakes its slate), in order,
// and leaves the other sessions' records to the batch.
func TestShownWriterFlushesOneSession(t *testing.T) {
	s, _ := newStore(t, Options{})
	w := NewShownWriter(s, nil) // Run is not started: only Flush writes
	ctx := context.Background()
	for _, rec := range [][]string{{"", "a", "b"}, {"", "c"}} {
		if err := w.Record(ctx, "u", "s", rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Record(ctx, "v", "s", []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx, "u", "s"); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(ctx, "u", "s")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"", "a", "b", "", "c"}; !slices.Equal(st.Session.Shown, want) {
		t.Fatalf("shown %q after Flush, want %q", st.Session.Shown, want)
	}
	if got := w.Pending("u", "s"); got != nil {
		t.Fatalf("still pending after Flush: %v", got)
	}
	if got := w.Pending("v", "s"); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("another session's records: %v", got)
	}
	if err := w.Flush(ctx, "nobody", ""); err != nil {
		t.Fatalf("Flush with nothing pending: %v", err)
	}
}
