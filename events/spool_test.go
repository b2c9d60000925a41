package events

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/segmentio/kafka-go"
)

func msg(i int) kafka.Message {
	return kafka.Message{Topic: TopicFeedback, Key: []byte(fmt.Sprintf("user-%d", i%7)), Value: []byte(fmt.Sprintf(`{"event_id":"e%d"}`, i))}
}

// drainAll peeks and commits until the spool is empty and returns the values.
func drainAll(t *testing.T, s *Spool, batch int) []string {
	t.Helper()
	var got []string
	for s.Pending() {
		msgs, pos, err := s.Peek(batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			t.Fatal("Pending but Peek found nothing")
		}
		for _, m := range msgs {
			if m.Topic != TopicFeedback || len(m.Key) == 0 {
				t.Fatalf("record %+v lost its topic or key", m)
			}
			got = append(got, string(m.Value))
		}
		if err := s.Commit(pos); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

func want(from, to int) []string {
	var w []string
	for i := from; i < to; i++ {
		w = append(w, string(msg(i).Value))
	}
	return w
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("record %d = %s, want %s", i, got[i], want[i])
		}
	}
}

func segments(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestSpoolOrderSegmentsAndRelease(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolOptions{MaxBytes: 1 << 20, SegmentBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 200 {
		if err := s.Append(t.Context(), msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Records != 200 || st.Bytes == 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := segments(t, dir); n < 5 {
		t.Fatalf("%d segment files for ~8 KB at 1 KB each", n)
	}
	equal(t, drainAll(t, s, 17), want(0, 200))
	if st := s.Stats(); st.Records != 0 || st.Bytes != 0 || segments(t, dir) != 1 {
		t.Fatalf("after delivering everything: %+v, %d files; want an empty spool", st, segments(t, dir))
	}
	// It keeps working after the release.
	if err := s.Append(t.Context(), msg(200), msg(201)); err != nil {
		t.Fatal(err)
	}
	equal(t, drainAll(t, s, 10), want(200, 202))
}

func TestSpoolSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolOptions{SegmentBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := s.Append(t.Context(), msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Deliver the first 30, then "crash" (close without more commits).
	msgs, pos, err := s.Peek(30)
	if err != nil || len(msgs) != 30 {
		t.Fatal(len(msgs), err)
	}
	if err := s.Commit(pos); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSpool(dir, SpoolOptions{}); err == nil {
		t.Fatal("a second process opened a spool in use")
	}
	_ = s.Close()

	s, err = OpenSpool(dir, SpoolOptions{SegmentBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st := s.Stats(); st.Records != 70 {
		t.Fatalf("reopened spool holds %d records, want the 70 undelivered", st.Records)
	}
	equal(t, drainAll(t, s, 50), want(30, 100))
}

func TestSpoolCutsTornTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string, size int64)
	}{
		{"half a record", func(path string, size int64) { _ = os.Truncate(path, size-5) }},
		{"garbage", func(path string, _ int64) {
			f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			_, _ = f.Write([]byte{9, 0, 0, 0, 1, 2, 3, 4, 'x'})
			_ = f.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenSpool(dir, SpoolOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if err := s.Append(t.Context(), msg(i)); err != nil {
					t.Fatal(err)
				}
			}
			_ = s.Close()
			files, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
			fi, _ := os.Stat(files[0])
			tc.damage(files[0], fi.Size())

			s, err = OpenSpool(dir, SpoolOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			wantN := 10
			if tc.name == "half a record" {
				wantN = 9
			}
			if n := s.Stats().Records; n != int64(wantN) {
				t.Fatalf("%d records after the damage, want %d", n, wantN)
			}
			// Appends after the cut are read back intact.
			if err := s.Append(t.Context(), msg(99)); err != nil {
				t.Fatal(err)
			}
			equal(t, drainAll(t, s, 100), append(want(0, wantN), string(msg(99).Value)))
		})
	}
}

func TestSpoolFull(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), SpoolOptions{MaxBytes: 400, SegmentBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for ; n < 100; n++ {
		if err := s.Append(t.Context(), msg(n)); err != nil {
			if !errors.Is(err, ErrSpoolFull) {
				t.Fatal(err)
			}
			break
		}
	}
	if n == 0 || n == 100 {
		t.Fatalf("%d records fit in 400 bytes", n)
	}
	if st := s.Stats(); st.Bytes > st.MaxBytes {
		t.Fatalf("spool holds %d bytes, bound %d", st.Bytes, st.MaxBytes)
	}
	// Delivering frees the space.
	equal(t, drainAll(t, s, 3), want(0, n))
	if err := s.Append(t.Context(), msg(n)); err != nil {
		t.Fatalf("after delivery: %v", err)
	}
}

func TestSpoolConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolOptions{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if err := s.Append(context.Background(), msg(w*1000+i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	_ = s.Close()
	s, err = OpenSpool(dir, SpoolOptions{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seen := map[string]int{}
	for _, v := range drainAll(t, s, 64) {
		seen[v]++
	}
	for w := range 8 {
		for i := range 50 {
			if v := string(msg(w*1000 + i).Value); seen[v] != 1 {
				t.Fatalf("%s read %d times", v, seen[v])
			}
		}
	}
	if len(seen) != 400 {
		t.Fatalf("%d distinct records, want 400", len(seen))
	}
	if err := s.Append(t.Context(), msg(1)); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if err := s.Append(t.Context(), msg(2)); !errors.Is(err, ErrSpoolClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}

// BenchmarkSpoolAppend measures acknowledged (written and fsync'd) appends
// of feedback-sized records, the path of every feedback request while Kafka
// is down, from one request goroutine per CPU and from 16 per CPU (group
// commit shares each fsync among the waiting ones):
//
//	go test -run '^$' -bench SpoolAppend -benchtime 3s ./events
func BenchmarkSpoolAppend(b *testing.B) {
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%dxCPU", par), func(b *testing.B) {
			s, err := OpenSpool(b.TempDir(), SpoolOptions{MaxBytes: 4 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			m := kafka.Message{Topic: TopicFeedback, Key: []byte("user-123"), Value: make([]byte, 230)}
			b.SetParallelism(par)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Append(context.Background(), m); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
